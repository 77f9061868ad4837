"""`Options`: how thoroughly and how strictly `check` judges, as one value."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from jaxnets.gradcheck.prepare import CheckInputError


@dataclass(frozen=True)
class Options:
    """How thoroughly and how strictly to check (every field has a default).

    cases: how many generated cases (default 60; 8 in fast mode), drawn from `seed`.
    kinks: input values where the rule has kinks, planted into the cases besides 0 (e.g.
        (0, 6) for relu6).
    rtol / atol / fd_rtol: tolerances (defaults: 1e-10 relative between analytic sources,
        with a floor of 1e-3 of the gradient's scale and the gradient's measured rounding;
        no absolute tolerance; 1e-6 against finite differences).
    fast: random projections <J v, u> instead of coordinate sweeps (default: above 200000
        differentiated elements).
    second_order / transforms / leading_sizes: switch off the second-order check, the
        jit/vmap comparison, or the cases at batch sizes 1 and N + 1.
    timeout: seconds one case may take before it counts as a runaway (default: no limit).
    save_dir: where each failing row's worst case is saved as .npz (default: not saved).
    replay: a saved case (.npz) to check alone instead of generating cases.
    """
    cases: int | None = None
    seed: int = 0
    kinks: tuple = (0.0,)
    rtol: float | None = None
    atol: float | None = None
    fd_rtol: float | None = None
    fast: bool | None = None
    second_order: bool = True
    transforms: bool = True
    leading_sizes: bool = True
    timeout: float | None = None
    save_dir: str | None = None
    replay: str | None = None

    @classmethod
    def of(cls, options=None, settings=None):
        """`options` (an Options, a dict or None) with `settings` (field name -> value) on top;
        CheckInputError naming the fields for an unknown one."""
        if isinstance(options, dict):
            options = cls(**cls._known(options))
        options = options if options is not None else cls()
        if not isinstance(options, cls):
            raise CheckInputError(f"options must be an Options, got {type(options).__name__}")
        return dataclasses.replace(options, **cls._known(settings or {}))

    @classmethod
    def _known(cls, values):
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise CheckInputError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                                  f"(Options has: {', '.join(fields)})")
        return dict(values)

    def as_kwargs(self):
        """The fields as keywords of `run_check`."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


__all__ = ["Options"]
