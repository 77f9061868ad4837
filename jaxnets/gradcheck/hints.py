"""Hints for a gradient that disagrees in a recognisable way, drawn from the mutant catalogue.

Each shape of error the catalogue plants (`jaxnets.conformance.mutants`) has a detector here: a
constant factor (the batch size, 2, a window or position count, -1), a transposed or padded
shape, a sum over the wrong axes, zeros where a term or mask went missing, and failures that
only show at ties or kinks, at large magnitudes, at one geometry (stride > 1), or with an
upstream gradient other than all ones / 1. A hint names the catalogue mutants that make
that mistake, so the report can say "as `softmax_missing_1_over_n`".
"""
from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np

#: hint kind -> the catalogue mutants that show it (tests/test_check_layer.py checks them)
CATALOGUE = {
    "transposed": ("affine_transposed_dw",),
    "padded": ("conv_dx_padding_not_stripped",),
    "sign": ("bce_with_logits_sign_error",),
    "factor2": ("l2_gradient_half_reg_w",),
    "batch": ("softmax_missing_1_over_n",),
    "size_factor": ("avg_pool_not_divided_by_window", "conv_db_averaged_over_positions"),
    "constant": ("wrong_m_41_over_42",),
    "summed_axes": ("bias_summed_over_all_axes",),
    "missing_mask": ("relu_backward_without_mask",),
    "ties_or_kinks": ("max_pool_grad_to_last_maximum", "max_pool_grad_to_all_tied_maxima", "relu_grad_one_at_zero"),
    "large": ("unstable_softmax",),
    "geometry": ("conv_dx_stride_off_by_one", "avg_pool_stride_off_by_one", "conv_dx_unflipped_kernel"),
    "cotangent": ("loss_vjp_ignores_cotangent",),
}


def _as(kind):
    names = CATALOGUE.get(kind, ())
    return f" (as the catalogue's {', '.join(f'`{n}`' for n in names)})" if names else ""


def shape_hint(got, want, example=None):
    """Why a gradient of shape `got` might have come out instead of `want`, or None."""
    got, want = tuple(got), tuple(want)
    if len(got) == 2 and got == want[::-1]:
        return "the transposed shape" + _as("transposed")
    if len(got) == len(want) >= 2 and got[:-2] == want[:-2]:
        dh, dw = got[-2] - want[-2], got[-1] - want[-1]
        if dh == dw > 0 and dh % 2 == 0:
            return f"larger by 2*{dh // 2} on the last two axes: the zero padding was not stripped" + _as("padded")
    if got == want[1:]:
        return "the leading (batch) axis is missing: summed or averaged over it?"
    if len(want) > 2 and got == (want[0], int(np.prod(want[1:]))):
        return "flattened: reshape it back to the input's shape"
    if got == () and len(want) == 1:
        return "one number where one per unit is expected: summed over all axes?" + _as("summed_axes")
    return None


def _named_sizes(sizes):
    """{value: "name"} for the named sizes and the products of two of them."""
    out = {}
    items = [(n, int(v)) for n, v in sizes.items() if int(v) > 1]
    for n, v in items:
        out.setdefault(v, n)
    for (n1, v1), (n2, v2) in itertools.combinations(items, 2):
        out.setdefault(v1 * v2, f"{n1} * {n2}")
    return out


def _factor_hint(c, sizes):
    """What a constant ratio c = got / expected may mean; every explanation that fits."""
    if abs(c + 1) < 1e-6:
        return "the sign is flipped" + _as("sign")
    fits = []
    if abs(c - 2) < 1e-6 or abs(c - 0.5) < 1e-6:
        fits.append("a 1/2 or a 2 from a square's derivative" + _as("factor2"))
    batch = sizes.get("N (batch)")
    if batch and batch > 1 and (abs(c - batch) < 1e-6 * batch or abs(c * batch - 1) < 1e-6):
        fits.append(f"exactly the batch size N = {batch}: a missing or extra 1/N" + _as("batch"))
    for value, name in sorted(_named_sizes(sizes).items()):
        if value != batch and (abs(c - value) < 1e-6 * value or abs(c * value - 1) < 1e-6):
            fits.append(f"{value} = {name}: a sum that should be a mean, or the reverse" + _as("size_factor"))
            break
    if fits:
        return f"off by a {'factor' if c > 1 else 'divisor'} of {max(c, 1 / c):g}: " + "; or ".join(fits)
    frac = Fraction(c).limit_denominator(100)
    if frac.denominator > 1 and abs(float(frac) - c) < 1e-9 * abs(c):
        return f"off by a constant factor {c:.6g} = {frac}" + _as("constant")
    return f"off by a constant factor {c:.6g}" + _as("constant")


def _where(mask, inputs):
    """' exactly where x < 0' when the entries of `mask` are those of one sign of an input
    of the same shape, else ''."""
    for name, x in inputs.items():
        if x.shape != mask.shape:
            continue
        for text, region in (("< 0", x < 0), ("== 0", x == 0), ("> 0", x > 0)):
            if np.array_equal(mask, region):
                return f" exactly where {name} {text}"
    return ""


def value_hints(got, want, sizes, inputs, full=True):
    """Hints for an analytic gradient `got` against the oracle's `want` (same shape).

    sizes: named sizes for factor hints ({"N (batch)": 4, "stride": 2, "x.shape[2]": 6, ...});
    inputs: {name: array} of the layer's inputs, to say where a wrong entry lies; full=False
    when the arrays are a sample of coordinates (finite differences), not whole gradients."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape or not got.size:
        return []
    scale = max(float(np.max(np.abs(want))), 1e-300)
    close = np.abs(got - want) <= 1e-8 * (np.abs(got) + np.abs(want)) + 1e-12 * scale
    if close.all():
        return []
    hints = []
    nz = np.abs(want) > 1e-9 * scale
    if nz.any():
        r = got[nz] / want[nz]
        c = float(np.median(r))
        if np.all(np.abs(r - c) <= 1e-6 * max(abs(c), 1e-12)) and np.all(np.abs(got[~nz]) <= 1e-9 * scale):
            return [_factor_hint(c, sizes)]
    zeroed = ~close & (got == 0) & nz
    if zeroed.any() and (close | zeroed).all():
        hints.append(f"0 where the oracle is not, at {int(zeroed.sum())} of {got.size} entries"
                     f"{_where(zeroed, inputs)}, exact elsewhere: a missing term, or a mask that is too strict")
    spurious = ~close & ~nz
    if spurious.any() and (close | spurious).all():
        hints.append(f"nonzero where the oracle is 0, at {int(spurious.sum())} of {got.size} entries"
                     f"{_where(spurious, inputs)}, exact elsewhere: a missing mask" + _as("missing_mask"))
    if not full:
        return hints
    if got.ndim == 2 and got.shape[0] == got.shape[1] > 1 and np.allclose(got, want.T, rtol=1e-8, atol=1e-12 * scale):
        hints.append("it equals the transpose of the expected gradient (a square shape hides the transposed "
                     "layout)" + _as("transposed"))
    if np.ptp(got) <= 1e-9 * max(np.max(np.abs(got)), 1e-300) and np.isclose(got.flat[0], want.sum(), rtol=1e-8):
        hints.append("every entry equals the sum of the whole expected gradient: summed over all axes, not "
                     "only over the batch" + _as("summed_axes"))
    return hints


def case_hints(results, describe):
    """Hints from which cases fail: `results` is [(case, status)], `describe(case)` gives
    {attribute: value} (value kind, upstream gradient, leading size, keyword values). A hint
    for each attribute whose values among failing cases never occur among passing ones."""
    failing = [describe(c) for c, s in results if s == "fail"]
    passing = [describe(c) for c, s in results if s != "fail"]
    if not failing or not passing:
        return []
    hints = []
    for attr in failing[0]:
        bad = {d[attr] for d in failing}
        good = {d[attr] for d in passing}
        if bad & good:
            continue
        bad_text, good_text = ", ".join(map(str, sorted(bad, key=str))), ", ".join(map(str, sorted(good, key=str)))
        if attr == "values":
            kind = "large" if bad <= {"large"} else ("ties_or_kinks" if bad <= {"zeros", "ties", "integers"} else "")
        else:
            kind = {"upstream": "cotangent", "N": ""}.get(attr, "geometry")
        if attr == "upstream" and good <= {"ones", "1"}:
            text = ("passes only with an all-ones upstream gradient (or a cotangent of 1): dout is not used as it "
                    "should be")
        else:
            text = f"fails only where {attr} is {bad_text}; passes where it is {good_text}"
        hints.append(text + _as(kind))
    return hints
