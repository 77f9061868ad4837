"""Finite differences of the NumPy float64 reference: the independent oracle.

Central differences (`reference_numpy.numerical`), Richardson-extrapolated from steps FD_STEP
and FD_STEP / 2 (error O(h^4), so small gradient entries still meet TOL_FD_F64), on all of a
parameter's coordinates or a seeded random subset (cs231n's grad_check_sparse).

`probe` / `judge` are the kink-aware form used on layers whose kinks are not known in
advance (`jaxnets.gradcheck.check_layer`): from the forward at the offsets PROBE_OFFSETS * h
along one coordinate or direction, they tell a smooth point (the Richardson estimate is the
oracle) from a kink (one-sided slopes differ and keep differing as the step shrinks) and
from a point too close to a kink for the steps to resolve. At a kink finite differences are
not an oracle: an analytic value passes as "ambiguous" when it lies between the one-sided
slopes of each output, and `judge` names the convention it follows (left or right
derivative, their mean).
"""
import math
from dataclasses import dataclass

import numpy as np

from jaxnets.gradcheck.tolerances import FD_MAX_COORDS, FD_NOISE_ULPS, FD_STEP, KINK_JUMP_RATIO, TOL_FD_F64
from reference_numpy.numerical import numerical_gradient, numerical_gradient_array


def richardson(central):
    """(4 D(h/2) - D(h)) / 3 for the central difference D(h) = central(h): O(h^4) error."""
    return (4.0 * central(FD_STEP / 2) - central(FD_STEP)) / 3.0


def fd_coords(shape, rng, limit=FD_MAX_COORDS):
    """Index arrays of the coordinates finite differences perturb: all, or `limit` at random."""
    size = int(np.prod(shape, dtype=np.int64))
    flat = np.arange(size) if size <= limit else np.sort(rng.choice(size, limit, replace=False))
    return np.unravel_index(flat, shape)


def fd_layer(forward, arrays, k, dout, coords):
    """d sum(forward(*arrays) * dout) / d arrays[k] at `coords` (1-D), by central differences
    of the NumPy forward (reference_numpy.gradcheck.numerical_gradient_array)."""
    work = [np.array(a, dtype=np.float64) for a in arrays]

    def f(v):
        work[k][coords] = v
        return forward(*work)

    v0 = np.array(arrays[k][coords], dtype=np.float64)
    return richardson(lambda h: numerical_gradient_array(f, v0.copy(), dout, h=h))


def fd_scalar(loss, arrays, k, coords):
    """d loss(*arrays) / d arrays[k] at `coords` (1-D), by central differences
    (reference_numpy.gradcheck.numerical_gradient)."""
    work = [np.array(a, dtype=np.float64) if isinstance(a, np.ndarray) else a for a in arrays]

    def f(v):
        work[k][coords] = v
        return loss(*work)

    v0 = np.array(arrays[k][coords], dtype=np.float64)
    return richardson(lambda h: numerical_gradient(f, v0.copy(), h=h))


#: where `probe` needs the function: multiples of the step h (0 first)
PROBE_OFFSETS = np.array([0.0, 1.0, -1.0, 0.5, -0.5, 0.25, -0.25])


def noise_floor(magnitude, h):
    """The rounding noise of a difference quotient with step h/4 of a function of size
    `magnitude` (see FD_NOISE_ULPS)."""
    return FD_NOISE_ULPS * np.finfo(np.float64).eps * float(magnitude) / (h / 4)


def output_bounds(outs, dout, h):
    """Per-output one-sided bounds from the forward's outputs at x + PROBE_OFFSETS * h
    (`outs`, shape (7, n), or (requests, 7, n) with one h per request): (lo4, hi4, lo2, hi2,
    curvature), where lo/hi at step h/4 (h/2) sum over outputs j the smaller / larger of
    dout_j times output j's left and right slope, and curvature sums |dout_j| times how much
    those slopes move from h/2 to h/4.

    A kink of one output lies between its own one-sided slopes; several outputs with kinks
    on the same line (a coordinate in two tied, overlapping pool windows) each do, but their
    sum need not lie between the sum's slopes: the bounds add them output by output."""
    outs = np.asarray(outs)
    h = np.asarray(h, np.float64)[..., None]
    f0 = outs[..., 0, :]
    r4, l4 = (outs[..., 5, :] - f0) * dout / (h / 4), (f0 - outs[..., 6, :]) * dout / (h / 4)
    r2, l2 = (outs[..., 3, :] - f0) * dout / (h / 2), (f0 - outs[..., 4, :]) * dout / (h / 2)
    return np.stack([np.sum(np.minimum(r4, l4), -1), np.sum(np.maximum(r4, l4), -1),
                     np.sum(np.minimum(r2, l2), -1), np.sum(np.maximum(r2, l2), -1),
                     np.sum(np.abs(r4 - r2) + np.abs(l4 - l2), -1)], -1)


@dataclass(frozen=True)
class Probe:
    """What finite differences say about one directional derivative.

    kind: "smooth" (Richardson estimates from (h, h/2) and (h/2, h/4) agree and no output
    has a kink), "kink" (some output's one-sided slopes differ by a jump that does not shrink
    with the step) or "unresolved" (a kink within the steps' reach, or rounding).
    estimate: the Richardson value from (h/2, h/4) (smooth) or the mean of the one-sided
    slopes.
    left, right: one-sided slopes of the sum at h/4; lo, hi: the output-by-output bounds a
    value at a kink must lie between (`output_bounds`); slack: their O(h) error plus noise.
    error: the smooth estimate's own error, |r1 - r2| between the Richardson values from
    (h, h/2) and (h/2, h/4); the estimate is r2, the one from the smaller steps (a correct
    RNN's directional derivative was 1.04e-6 from r1, beyond the 1e-6 tolerance, and agreed
    with r2; a transformer block's on a 1000-scale case 1.06e-6 from r1).
    """

    kind: str
    estimate: float
    left: float
    right: float
    lo: float
    hi: float
    slack: float
    noise: float
    error: float = 0.0


def probe(values, h, magnitude, bounds):
    """A Probe from f = sum(out * dout) at x + PROBE_OFFSETS * h (`values`, 7 floats) and the
    output-by-output `bounds` (`output_bounds`); `magnitude` bounds |f| and the terms it sums,
    for the noise floor."""
    f0, p1, m1, p2, m2, p4, m4 = (float(v) for v in values)
    lo4, hi4, lo2, hi2, curvature = (float(v) for v in bounds)
    noise = noise_floor(magnitude, h)
    d1, d2, d4 = (p1 - m1) / (2 * h), (p2 - m2) / h, (p4 - m4) / (h / 2)
    r1, r2 = (4 * d2 - d1) / 3, (4 * d4 - d2) / 3
    right, left = (p4 - f0) / (h / 4), (f0 - m4) / (h / 4)
    slack = curvature + noise
    spread4, spread2 = hi4 - lo4, hi2 - lo2
    if spread4 > 10 * noise and spread4 > KINK_JUMP_RATIO * spread2:
        return Probe("kink", (left + right) / 2, left, right, lo4, hi4, slack, noise)
    if agree(r1, r2, TOL_FD_F64, noise):
        return Probe("smooth", r2, left, right, lo4, hi4, slack, noise, abs(r1 - r2))
    return Probe("unresolved", (left + right) / 2, left, right, lo4, hi4, slack, noise)


def agree(a, b, tol, noise=0.0):
    """cs231n's relative error of two numbers within tol, or their difference below noise."""
    return relative_error(a, b, tol, noise) <= tol


def relative_error(a, b, tol=TOL_FD_F64, noise=0.0):
    """cs231n's relative error of two numbers, |a - b| / max(1e-8, |a| + |b|), with the
    denominator at least noise / tol: a difference below the noise floor is within tol (inf
    when either number is not finite)."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(1e-8, abs(a) + abs(b), noise / tol)


def judge(pr, value, tol=TOL_FD_F64):
    """("pass" | "fail" | "ambiguous", convention or None) for an analytic directional
    derivative `value` against Probe `pr`.

    Smooth: the value must match the Richardson estimate (tol, or within the noise floor plus
    the estimate's own error).
    Kink or unresolved: finite differences are no oracle; the value must lie between the
    one-sided slopes, output by output (widened by their slack), and is "ambiguous", with
    the convention it is closest to: the "left" / "right" derivative or their "mean" (else
    "between": a different side for different outputs, e.g. one of several tied maxima)."""
    if not math.isfinite(value):
        return "fail", None
    if pr.kind == "smooth":
        return ("pass" if agree(value, pr.estimate, tol, pr.noise + pr.error) else "fail"), None
    if not pr.lo - pr.slack <= value <= pr.hi + pr.slack:
        return "fail", None
    if pr.kind == "unresolved" and pr.hi - pr.lo <= pr.slack:
        return "ambiguous", None
    for name, target in (("left", pr.left), ("right", pr.right), ("mean", (pr.left + pr.right) / 2)):
        if abs(value - target) <= pr.slack:
            return "ambiguous", name
    return "ambiguous", "between"
