"""Comparing two gradient sources: cs231n's relative error, max(|a - b| / max(1e-8, |a| + |b|)),
recorded per parameter with where it is reached (a `Comparison`), and the scales rounding is
measured against."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reference_numpy.numerical import max_rel_error


@dataclass(frozen=True)
class Comparison:
    """One parameter compared between two gradient sources."""

    param: str
    a: str
    b: str
    err: float
    index: tuple
    tol: float
    detail: str = ""

    @property
    def pair(self):
        return f"{self.a} vs {self.b}"

    @property
    def ok(self):
        return math.isfinite(self.err) and self.err <= self.tol

    def __str__(self):
        text = f"{self.param}: {self.pair} max rel error {self.err:.3e} at index {self.index} (tol {self.tol:.0e})"
        return f"{text}; {self.detail}" if self.detail else text


def compare_arrays(param, a_name, a, b_name, b, tol, coords=None, scale_floor=None, scale=None, atol=None):
    """cs231n relative error of a vs b as a Comparison; shape mismatches and non-finite values
    are failures (err = inf). `coords` maps the index of 1-D subset arrays back to the full
    parameter's index. `scale_floor` (user layers, `tolerances.GRAD_SCALE_FLOOR`): entries
    smaller than scale_floor times `scale` (default: the arrays' largest entry) are compared
    at that size; `atol`: differences up to atol pass whatever the entries' size."""
    try:
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
    except Exception as exc:  # a mutant may return something that is not an array
        return Comparison(param, a_name, b_name, math.inf, (), tol, f"not an array: {exc}")
    if a.shape != b.shape:
        return Comparison(param, a_name, b_name, math.inf, (), tol, f"shape {a.shape} vs {b.shape}")

    def full_index(idx):
        return tuple(int(c[idx[0]]) for c in coords) if coords is not None and idx else idx

    finite = np.isfinite(a) & np.isfinite(b)
    if not finite.all():
        idx = np.unravel_index(int(np.argmin(finite)), a.shape) if a.ndim else ()
        return Comparison(param, a_name, b_name, math.inf, full_index(tuple(int(i) for i in idx)), tol,
                          f"non-finite value: {a_name} {float(a[idx]):.10g}, {b_name} {float(b[idx]):.10g}")
    if scale_floor is None and not atol:
        err, idx = max_rel_error(a, b)
    else:
        err, idx = scaled_rel_error(a, b, scale_floor or 0.0, scale, (atol or 0.0) / tol)
    return Comparison(param, a_name, b_name, err, full_index(idx), tol,
                      f"{a_name} {float(a[idx]):.10g}, {b_name} {float(b[idx]):.10g}")


def scaled_rel_error(a, b, scale_floor, scale=None, floor=0.0):
    """(error, index): max |a - b| / max(1e-8, |a| + |b|, scale_floor * scale, floor), scale
    defaulting to the largest |entry| of a and b: the scale term keeps rounding in entries far
    below the gradient's scale (cancelling sums, saturated softmax rows) from counting as
    relative error; `floor` is an absolute tolerance divided by the relative one."""
    if a.size == 0:
        return 0.0, ()
    if scale is None:
        scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))))
    r = np.abs(a - b) / np.maximum(max(1e-8, scale_floor * scale, floor), np.abs(a) + np.abs(b))
    flat = int(np.argmax(r))
    return float(r.flat[flat]), tuple(int(i) for i in np.unravel_index(flat, r.shape))


def gradient_scale(a, b, dout):
    """The size rounding in a gradient is measured against: its largest entry, or the
    upstream gradient's (a saturated tanh's gradient is all rounding of 1 - out**2)."""
    sizes = [float(np.max(np.abs(v))) for v in (a, b, dout) if np.size(v)]
    return max(sizes) if sizes else 0.0


def cotangent_scale(cot):
    return max([float(np.max(np.abs(c))) for c in cot if np.size(c)], default=0.0)
