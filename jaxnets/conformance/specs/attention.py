"""Specs of attention, multi-head attention and the pre-norm transformer block. They use what
`OpSpec` has for them: array inputs without a gradient (`no_grad`: the mask) and a scale
floor where a gradient is exactly 0 in exact arithmetic (`scale_floor`: a query that sees one
key).

Stress inputs: fully masked query rows (a query that may see no key: out = 0, no gradient),
on top of the causal and padding masks of the geometry.
"""
from __future__ import annotations

import numpy as np

from jaxnets import ops
from jaxnets.conformance.opspec import OpSpec
from jaxnets.conformance.specs.inputs import ATTEMPTS, weight
from jaxnets.gradcheck.tolerances import GRAD_SCALE_FLOOR, KINK_MARGIN
from reference_numpy import layers as npl

#: None; a padding mask (..., 1, Tk) (stress: some sequences all padding); a general mask
#: (..., Tq, Tk); one (Tq, Tk) mask shared by the batch (and heads)
MASK_KINDS = ("none", "padding", "general", "shared")


def _g_attention(draw):
    return {"N": draw("N", 1, 2), "heads": draw("heads", 1, 2), "Tq": draw("Tq", 1, 5), "Tk": draw("Tk", 1, 5),
            "d": draw("d", 1, 4), "dv": draw("dv", 1, 3), "mask": MASK_KINDS[draw("mask kind", 0, 3)],
            "causal": bool(draw("causal", 0, 1))}


def _mask(rng, kind, lead, tq, tk, stress):
    """A boolean mask of `kind` for scores (*lead, tq, tk), True for about 70% of the keys;
    stress hides every key from some query rows (kind "none" then gets a general mask)."""
    if kind == "none" and not stress:
        return None
    if kind == "padding":
        mask = rng.random((*lead, 1, tk)) < 0.7
        if stress:
            mask.reshape(-1, tk)[rng.integers(0, mask.size // tk)] = False  # one sequence all padding
        return mask
    mask = rng.random((tq, tk) if kind == "shared" else (*lead, tq, tk)) < 0.7
    if stress:
        rows = mask.reshape(-1, tq, tk)
        rows[rng.random(rows.shape[:2]) < 0.4] = False
        rows[:, rng.integers(0, tq)] = False  # at least one blind query per batch entry
    return mask


def _v_attention(g, rng, stress):
    lead = (g["N"], g["heads"])
    q = rng.standard_normal((*lead, g["Tq"], g["d"]))
    k = rng.standard_normal((*lead, g["Tk"], g["d"]))
    v = rng.standard_normal((*lead, g["Tk"], g["dv"]))
    return (q, k, v, _mask(rng, g["mask"], lead, g["Tq"], g["Tk"], stress)), (), True


def _g_mha(draw):
    return {"N": draw("N", 1, 2), "Tq": draw("Tq", 1, 4), "Tk": draw("Tk", 1, 4), "Eq": draw("Eq", 1, 4),
            "Ek": draw("Ek", 1, 4), "Ev": draw("Ev", 1, 4), "heads": draw("heads", 1, 3), "dh": draw("dh", 1, 2),
            "dv": draw("dv", 1, 2), "M": draw("M", 1, 3), "mask": MASK_KINDS[draw("mask kind", 0, 3)],
            "causal": bool(draw("causal", 0, 1))}


def _v_mha(g, rng, stress):
    n, tq, tk, hd, hv = g["N"], g["Tq"], g["Tk"], g["heads"] * g["dh"], g["heads"] * g["dv"]
    arrays = (rng.standard_normal((n, tq, g["Eq"])), rng.standard_normal((n, tk, g["Ek"])),
              rng.standard_normal((n, tk, g["Ev"])),
              weight(rng, g["Eq"], (g["Eq"], hd)), rng.standard_normal(hd),
              weight(rng, g["Ek"], (g["Ek"], hd)), rng.standard_normal(hd),
              weight(rng, g["Ev"], (g["Ev"], hv)), rng.standard_normal(hv),
              weight(rng, hv, (hv, g["M"])), rng.standard_normal(g["M"]))
    return (*arrays, _mask(rng, g["mask"], (n,), tq, tk, stress)), (), True


def _g_block(draw):
    return {"N": draw("N", 1, 2), "T": draw("T", 1, 4), "D": draw("D", 3, 4), "heads": draw("heads", 1, 2),
            "dh": draw("dh", 1, 2), "F": draw("F", 1, 4),
            "causal": bool(draw("causal", 0, 1)), "mask": MASK_KINDS[draw("mask kind", 0, 3)],
            "activation": ("relu", "gelu")[draw("activation", 0, 1)]}


def _v_block(g, rng, stress):
    n, t, d, f, hd = g["N"], g["T"], g["D"], g["F"], g["heads"] * g["dh"]
    for _ in range(ATTEMPTS):
        params = {"ln1_gamma": rng.standard_normal(d), "ln1_beta": rng.standard_normal(d),
                  "Wq": weight(rng, d, (d, hd)), "bq": rng.standard_normal(hd),
                  "Wk": weight(rng, d, (d, hd)), "bk": rng.standard_normal(hd),
                  "Wv": weight(rng, d, (d, hd)), "bv": rng.standard_normal(hd),
                  "Wo": weight(rng, hd, (hd, d)), "bo": rng.standard_normal(d),
                  "ln2_gamma": rng.standard_normal(d), "ln2_beta": rng.standard_normal(d),
                  "W1": weight(rng, d, (d, f)), "b1": rng.standard_normal(f),
                  "W2": weight(rng, f, (f, d)), "b2": rng.standard_normal(d)}
        arrays = (rng.standard_normal((n, t, d)), *(params[p] for p in ops.TRANSFORMER_BLOCK_PARAMS),
                  _mask(rng, g["mask"], (n,), t, t, stress))
        # finite differences need every ReLU input of the MLP KINK_MARGIN away from 0
        if g["activation"] == "gelu" or np.min(np.abs(_block_mlp_input(arrays, g))) > KINK_MARGIN:
            return arrays, (), True
    return arrays, (), False


def _block_mlp_input(arrays, g):
    """The ReLU's inputs W1 LN2(h) + b1 in the NumPy block (its cache of the activation)."""
    return _np_block(*arrays, *_static_block(g))[1][4]


# ----------------------------------------------------------------------------- wiring
# Arrays first, then the static arguments (the engine's convention); the layers take their
# mask between the two, so these adapters move it.

def _mask_before_static(fn, n_arrays, n_static_before=1):
    """`f(*arrays, mask, *static)` calling `fn(*arrays, *static[:k], mask, *static[k:])`."""

    def f(*args):
        arrays, mask, static = args[:n_arrays], args[n_arrays], args[n_arrays + 1:]
        return fn(*arrays, *static[:n_static_before], mask, *static[n_static_before:])

    return f


_MHA_ARRAYS = 11
_BLOCK_ARRAYS = 17


def _np_block(*args):
    return _mask_before_static(npl.transformer_block_forward, _BLOCK_ARRAYS)(*args)


def _static_attention(g):
    return (g["causal"],)


def _static_mha(g):
    return (g["heads"], g["causal"])


def _static_block(g):
    return (g["heads"], g["causal"], g["activation"])


def _moved(n_arrays):
    return lambda fn: _mask_before_static(fn, n_arrays)


EDGES = {
    "attention": ({"N": 2, "heads": 2, "Tq": 4, "Tk": 4, "d": 3, "dv": 2, "mask": "none", "causal": True},
                  {"N": 1, "heads": 1, "Tq": 3, "Tk": 5, "d": 2, "dv": 3, "mask": "padding", "causal": False},
                  {"N": 2, "heads": 1, "Tq": 5, "Tk": 3, "d": 4, "dv": 1, "mask": "general", "causal": True},
                  {"N": 1, "heads": 2, "Tq": 1, "Tk": 1, "d": 1, "dv": 1, "mask": "none", "causal": False}),
    "multihead_attention": (
        {"N": 2, "Tq": 4, "Tk": 4, "Eq": 3, "Ek": 3, "Ev": 3, "heads": 2, "dh": 2, "dv": 2, "M": 3,
         "mask": "none", "causal": True},
        {"N": 1, "Tq": 2, "Tk": 4, "Eq": 2, "Ek": 3, "Ev": 1, "heads": 3, "dh": 1, "dv": 2, "M": 2,
         "mask": "general", "causal": False},
        {"N": 2, "Tq": 3, "Tk": 3, "Eq": 4, "Ek": 4, "Ev": 4, "heads": 1, "dh": 2, "dv": 1, "M": 1,
         "mask": "padding", "causal": True}),
    "transformer_block": (
        {"N": 2, "T": 4, "D": 4, "heads": 2, "dh": 2, "F": 4, "mask": "none", "causal": True, "activation": "gelu"},
        {"N": 1, "T": 3, "D": 3, "heads": 1, "dh": 2, "F": 3, "mask": "general", "causal": False,
         "activation": "relu"},
        {"N": 2, "T": 2, "D": 3, "heads": 2, "dh": 1, "F": 2, "mask": "padding", "causal": True,
         "activation": "relu"}),
}

_MHA_PARAMS = ("query", "key", "value", "Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo", "mask")

SPECS = (
    OpSpec("attention", "layer", ("q", "k", "v", "mask"), _g_attention, _v_attention, ops.attention_forward,
           npl.attention_forward, ops.attention_backward, npl.attention_backward, _static_attention,
           edges=EDGES["attention"], no_grad=("mask",), scale_floor=GRAD_SCALE_FLOOR),
    OpSpec("multihead_attention", "layer", _MHA_PARAMS, _g_mha, _v_mha,
           _mask_before_static(ops.multihead_attention_forward, _MHA_ARRAYS),
           _mask_before_static(npl.multihead_attention_forward, _MHA_ARRAYS),
           ops.multihead_attention_backward, npl.multihead_attention_backward, _static_mha,
           edges=EDGES["multihead_attention"], call=_moved(_MHA_ARRAYS), no_grad=("mask",),
           scale_floor=GRAD_SCALE_FLOOR),
    OpSpec("transformer_block", "layer", ("x", *ops.TRANSFORMER_BLOCK_PARAMS, "mask"), _g_block, _v_block,
           _mask_before_static(ops.transformer_block_forward, _BLOCK_ARRAYS), _np_block,
           ops.transformer_block_backward, npl.transformer_block_backward, _static_block,
           edges=EDGES["transformer_block"], call=_moved(_BLOCK_ARRAYS), no_grad=("mask",),
           scale_floor=GRAD_SCALE_FLOOR),
)
