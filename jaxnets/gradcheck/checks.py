"""The tables of checks: rows of (oracle a, oracle b, how to judge), iterated, never sliced.

A `Check` names its two sides for the report, the sources a pair judge compares, what must be
available for the row to run (`needs`, checked once per subject: the row is then reported as
not run, with why), and its judge (`jaxnets.gradcheck.judges`). `user_table(subject)` is the
table for a user's code (its rows named after the subject's rule: backward, bwd, jvp rule);
the conformance suite builds its own tables from the same `Check` (`jaxnets.conformance.tables`).

Adding an oracle: one unit in `jaxnets.gradcheck.oracles`, one judge in `judges`, one row here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from jaxnets.gradcheck import judges

__all__ = ["Check", "user_table"]


@dataclass(frozen=True)
class Check:
    name: str
    a: str
    b: str
    judge: Callable
    sources: tuple = ()
    needs: tuple = ()
    outputs: bool = True  # compare the outputs as well as the gradients
    grads: bool = True


def user_table(subject):
    """The rows for a user's subject, named after its rule."""
    rule = subject.rule_label
    wired = {"custom_jvp": "custom_jvp", "function": "jax.grad"}.get(subject.kind, "custom_vjp")
    forward = "jvp rule" if subject.kind == "custom_jvp" else "autodiff jvp"
    jvp = subject.jvp_rule is not None
    # a reference the user gives defines the convention at kinks; the project's own twin of a
    # cs231n name does not (ReLU'(0) = 1 is as valid a subgradient as 0)
    strict_reference = "strict" if subject.reference is None or subject.reference.convention else "kinks"
    rows = (
        Check(f"{rule}: runs, finite", rule, "-", judges.runs, needs=("rule",)),
        Check(f"{rule} ~ autodiff", rule, "autodiff", judges.pair("arbiter"), ("rule", "autodiff"),
              needs=("autodiff",)),
        Check(f"{wired} ~ autodiff (in context)", wired, "autodiff", judges.in_context, needs=("wired", "autodiff")),
        Check(f"{rule} ~ reference", rule, "reference", judges.pair(strict_reference), ("rule", "reference"),
              needs=("reference",), outputs=False),
        Check(f"{rule} ~ reference autodiff", rule, "reference autodiff", judges.pair("kinks"),
              ("rule", "reference_autodiff"), needs=("reference_autodiff",), outputs=False),
        Check("forward ~ reference", "forward", "reference", judges.pair("strict"), ("rule", "reference"),
              needs=("reference",), grads=False),
        Check(f"{rule} ~ finite differences", rule, "fd", judges.fd_check, needs=("rule",)),
    ) + ((
        Check("jvp rule ~ finite differences", "jvp rule", "fd", judges.jvp_fd, needs=("jvp_rule",)),
        Check("jvp rule ~ autodiff jvp", "jvp rule", "autodiff jvp", judges.jvp_autodiff,
              needs=("jvp_rule", "autodiff")),
    ) if jvp else ()) + (
        Check("forward ~ reverse (dot product)", forward, rule, judges.dot,
              ("jvp_rule" if subject.kind == "custom_jvp" else "jvp_autodiff",),
              needs=("jvp_rule",) if subject.kind == "custom_jvp" else ("autodiff_jvp",)),
        Check("second order ~ finite differences", "jax.grad of your rule", "fd of your rule",
              judges.second_order_check, needs=("wired", "second_order")),
        Check(f"{rule}: jit ~ eager", "jit", "eager", judges.transform, ("jit", "eager"), needs=("transforms",)),
        Check(f"{rule}: vmap ~ batch", "vmap", "batch", judges.transform, ("vmap", "batch"), needs=("vmap",)),
    )
    return rows
