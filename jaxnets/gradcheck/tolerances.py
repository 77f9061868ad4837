"""Tolerances of the equivalence checks, with the measurements that set them; precision setup.

Tolerances live here and nowhere else.
"""
import contextlib
import dataclasses

import jax
import numpy as np

#: manual / autodiff / custom_vjp / NumPy, float64: they differ only in summation order.
TOL_ANALYTIC_F64 = 1e-10
#: any analytic gradient vs Richardson-extrapolated central differences, float64.
TOL_FD_F64 = 1e-6
#: float32 JAX modes vs each other and vs the float64 NumPy reference on the same (float32)
#: inputs, per op. cs231n's relative error has no absolute floor above 1e-8, so an entry that
#: is a sum with cancellation (a conv dw over N*Ho*Wo terms, an overlapping avg-pool dx of
#: +-dout/6 terms) carries float32's eps times the cancellation ratio. Measured over ~25,000
#: float32 op cases: 99.9% below 1e-3, p99 ~3e-5, max 1.0e-2 (an avg-pool entry of 7e-7);
#: bound = 3x the max. (A floor relative to the parameter's gradient scale does not tame
#: the tail: the worst entries are whole gradients that cancel, such as a bias.)
TOL_ANALYTIC_F32 = 3e-2
#: the same for whole models, whose 784- and 1568-wide sums cancel more: over 720 float32
#: model cases p90 2e-4, p99 7e-3, max 4.8e-2 (a digits W1 entry of 1e-7 from cancelling
#: sums; occupancy's b2 ~1e-6 out of +-0.5/N terms, 1e-2); bound = 2x the max.
TOL_ANALYTIC_F32_MODELS = 1e-1

#: the larger of the two central-difference steps; the Richardson pair is (FD_STEP, FD_STEP / 2).
FD_STEP = 1e-3
#: kink-free inputs keep every ReLU input and every pool-window tie gap at least this far
#: from a kink, so no finite-difference step crosses one.
KINK_MARGIN = 1e-2
#: finite differences on at most this many coordinates per parameter (all of them when the
#: parameter is smaller; otherwise a seeded random subset, as cs231n's grad_check_sparse).
FD_MAX_COORDS = 16
#: user layers (`check_layer`): an analytic gradient entry smaller than this fraction of the
#: gradient's scale (its largest entry, or the upstream gradient's) is compared at that size.
#: Two correct implementations of a sum that cancels (a saturated softmax row's p - 1 at
#: scores of 1000, tanh's 1 - out**2 where out rounds to 1) differ by a few ulps of the
#: terms, i.e. of the scale, which in an entry 1e-12 of the scale is a relative error of
#: ~1e-4 (measured: 2.7e-8 on a softmax entry of 5.5e-12 in a row whose gradient is ~0.25;
#: 4.8e-8 on a saturated tanh entry of 3e-15). With TOL_ANALYTIC_F64 this allows 1e-13 of
#: the scale, ~450 ulps: a D-term sum that cancels to 0 keeps ~D ulps of its terms, and
#: 1e-14 (the earlier floor, 1e-4) failed correct code — a cs231n batch norm's dx of
#: -5.7e-14 against the twin's 0 at scale 1, a layer norm's 4e-14 under an all-ones upstream
#: whose true gradient is exactly 0. The op suite's hand-built inputs avoid those zones.
GRAD_SCALE_FLOOR = 1e-3
#: user layers, float64: a disagreement between two analytic gradients no larger than
#: ROUNDING_FACTOR times their measured rounding (`CaseContext.rounding`: the rule and autodiff
#: rerun in float32, their distance from float64 scaled by the ratio of the epsilons) is
#: rounding, not a wrong rule. Needed where the whole gradient is a cancellation: attention on
#: a "large values" case (scores ~1e6), where a query that sees one key has a true gradient of
#: exactly 0 and a correct rule gives 2e-10 (eps * |dp| * |k|) against autodiff's 0 — a
#: relative error no scale floor absorbs, since the gradient's scale there is itself rounding.
ROUNDING_FACTOR = 8.0
#: the input moves of the second measurement: up to this many ulps per entry (a backward
#: whose error is O(n eps) for n-term sums moves by as much).
ROUNDING_ULPS = 16.0
#: a measured move above this fraction of the gradient's scale (its largest entry or the
#: upstream gradient's) is a jump — a tie broken, a kink crossed — not rounding.
ROUNDING_CAP = 1e-6
#: rounding noise of a finite difference, in units of eps * (magnitude of the function) /
#: step: a difference below it is not resolved and counts as agreement (user layers, whose
#: inputs are generated at several scales, reach it; the op suite's inputs stay above it).
#: The function's magnitude is taken as the larger of max |phi| and sum |out * dout| (the
#: terms its final sum adds), plus sum |x * dphi/dx| (the rounding of the perturbed inputs);
#: 32 ulps of it per evaluation. Too small a floor only turns a
#: comparison "ambiguous" (unresolved), too large a floor would let errors through.
FD_NOISE_ULPS = 32.0
#: a change of one-sided slope between the step h/2 and h/4 keeps at least this fraction of
#: its size at a kink (it is constant there), but halves where the function is smooth
#: (the gap is h * f'' / 2): the ratio that tells the two apart.
KINK_JUMP_RATIO = 0.75
_F64 = np.dtype(np.float64)


def tolerances(dtype, model=False):
    """(analytic tolerance, finite-difference tolerance or None) for a dtype."""
    if np.dtype(dtype) == _F64:
        return TOL_ANALYTIC_F64, TOL_FD_F64
    return (TOL_ANALYTIC_F32_MODELS if model else TOL_ANALYTIC_F32), None


@contextlib.contextmanager
def precise_jax():
    """Enable float64 and full-precision matmuls (GPUs default to TF32), restoring after."""
    old = (jax.config.jax_enable_x64, jax.config.jax_default_matmul_precision)
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", old[0])
        jax.config.update("jax_default_matmul_precision", old[1])


def require_x64(dtype):
    """RuntimeError unless float64 JAX is on (a float64 check would silently run in float32)."""
    if np.dtype(dtype) == _F64 and not jax.config.jax_enable_x64:
        raise RuntimeError("float64 gradient checks need jax_enable_x64 (use jaxnets.gradcheck.precise_jax())")


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """The tolerances one check runs with (`--rtol`, `--atol` on the command line).

    analytic: relative tolerance between analytic sources; fd: against finite differences;
    floor: entries below this fraction of the gradient's scale are compared at that size
    (None: cs231n's plain relative error, the suite's); atol: an absolute difference that
    always passes (None: none)."""

    analytic: float = TOL_ANALYTIC_F64
    fd: float = TOL_FD_F64
    floor: float | None = None
    atol: float | None = None

    def describe(self):
        return {"rtol (analytic)": self.analytic, "rtol (finite differences)": self.fd,
                "scale floor": self.floor, "atol": self.atol}
