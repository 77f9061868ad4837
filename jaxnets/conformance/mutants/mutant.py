"""The record of a planted mistake (`Mutant`) and of the suite's verdict on it (`MutantResult`)."""
from __future__ import annotations

from typing import Callable, NamedTuple


class Mutant(NamedTuple):
    name: str
    op: str  # the jaxnets.conformance.OPS entry it replaces the implementation of
    fn: Callable  # a backward(dout, cache) for layers, a (value, grad) function for losses
    description: str
    erratum: bool = False  # planted from SPEC.md's Errata table
    #: a replacement for jaxnets.ops.vjp's custom_vjp wiring (manual_vjp / loss_vjp), for a
    #: mistake in the wiring rather than in `fn` (then `fn` is the correct function)
    wiring: Callable | None = None


class MutantResult(NamedTuple):
    name: str
    caught: bool
    detail: str  # the first failing comparison (or why it was not caught)
