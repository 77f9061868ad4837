"""Specs of the norms: batch norm and its spatial form, layer norm and its temporal form,
spatial group norm.

Stress inputs: a constant group (variance 0: only eps is left, so the function changes on a
scale of sqrt(eps) and finite differences do not apply), and groups of one value (the output
is beta, dx exactly 0). Groups of exactly two values are left out: they normalise to about +-1
whatever the input, so dx is ~eps/var, a difference of O(1) terms that every implementation
rounds differently (relative errors ~1e-10 in float64, 10% in float32: noise, not a gradient
to compare).
"""
from __future__ import annotations

import numpy as np

from jaxnets import ops
from jaxnets.conformance.opspec import OpSpec
from jaxnets.conformance.specs.inputs import ATTEMPTS
from jaxnets.gradcheck.tolerances import FD_STEP
from reference_numpy import layers as npl

#: a norm's FD is valid only when every group's variance keeps sqrt(var + eps) far above the
#: step: then the function is smooth on the step's scale
_MIN_VAR_FOR_FD = (100 * FD_STEP) ** 2
EPS = 1e-5


def _not_two(m):
    """A group size of 1 or >= 3 (see the module docstring: groups of 2 are left out)."""
    return m + 1 if m == 2 else m


def _g_rows(draw):
    return {"N": _not_two(draw("N", 1, 6)), "D": _not_two(draw("D", 1, 5))}


def _g_steps(draw):
    return {"N": draw("N", 1, 3), "T": draw("T", 1, 4), "D": _not_two(draw("D", 1, 5))}


def _g_images(draw):
    g = {"N": draw("N", 1, 3), "C": draw("C", 1, 3), "H": draw("H", 1, 3), "W": draw("W", 1, 3)}
    if g["N"] * g["H"] * g["W"] == 2:  # a channel's group: N * H * W values
        g["W"] += 1
    return g


def _g_groups(draw):
    groups = draw("groups", 1, 3)
    g = {"N": draw("N", 1, 2), "G": groups, "C": groups * draw("channels per group", 1, 2),
         "H": draw("H", 1, 3), "W": draw("W", 1, 3)}
    if g["C"] // groups * g["H"] * g["W"] == 2:  # a group: C / G * H * W values
        g["W"] += 1
    return g


EDGES = {
    "batchnorm": ({"N": 1, "D": 3},  # one row: mean = x, variance 0
                  {"N": 5, "D": 4}, {"N": 3, "D": 1}, {"N": 6, "D": 2}),
    "layernorm": ({"N": 3, "D": 1},  # one feature per row: variance 0
                  {"N": 1, "D": 4}, {"N": 5, "D": 3}),
    # first: several sequences and steps (the public API's first example; a row-order slip
    # is invisible with N = 1 or T = 1, and D = 1 has dx = 0)
    "temporal_layernorm": ({"N": 3, "T": 2, "D": 3}, {"N": 2, "T": 3, "D": 1},  # one feature per step: variance 0
                           {"N": 1, "T": 1, "D": 4}),
    "spatial_batchnorm": ({"N": 1, "C": 2, "H": 1, "W": 1},  # one value per channel
                          {"N": 2, "C": 3, "H": 2, "W": 3}, {"N": 3, "C": 1, "H": 3, "W": 2}),
    "spatial_groupnorm": ({"N": 2, "G": 2, "C": 4, "H": 2, "W": 3},  # groups of 2 consecutive channels
                          {"N": 1, "G": 3, "C": 3, "H": 2, "W": 2},  # one channel per group (instance norm)
                          {"N": 2, "G": 1, "C": 2, "H": 3, "W": 1}),  # one group (layer norm over C, H, W)
}


def _norm_values(shape, groups_of, features):
    """(x, gamma, beta) generators for a norm whose groups are the columns of `groups_of(x)`
    (a 2-D view of x or a copy) and whose gamma/beta have `features` entries."""

    def values(g, rng, stress):
        gamma, beta = rng.standard_normal(features(g)), rng.standard_normal(features(g))
        if stress:  # one group constant (variance 0)
            x = rng.standard_normal(shape(g))
            flat = np.arange(x.size).reshape(x.shape)
            where = groups_of(flat)[:, rng.integers(0, groups_of(flat).shape[1])]
            # a small integer: the group's mean is then exactly it and x - mean exactly 0 (a
            # non-integer's mean can be off by an ulp, which 1/sqrt(eps) blows up to noise)
            x.flat[where] = float(rng.integers(-3, 4))
            return (x, gamma, beta), (), False
        for _ in range(ATTEMPTS):
            x = rng.standard_normal(shape(g)) * rng.choice([0.5, 1.0, 3.0]) + rng.normal(0.0, 2.0)
            groups = groups_of(x)
            # A group of 2 normalises to about +-1 whatever x is: dx ~ eps / var, below what
            # finite differences of O(1) outputs resolve (the analytic sources still compare).
            if groups.shape[0] >= 3 and np.min(np.var(groups, axis=0)) > _MIN_VAR_FOR_FD:
                return (x, gamma, beta), (), True
        return (x, gamma, beta), (), False

    return values


def _rows(g):
    return (g["N"], g["D"])


def _steps(g):
    return (g["N"], g["T"], g["D"])


def _images(g):
    return (g["N"], g["C"], g["H"], g["W"])


def _channel_columns(x):
    return np.moveaxis(x, 1, 0).reshape(x.shape[1], -1).T


def _group_columns(g):
    def view(x):
        return x.reshape(x.shape[0] * g["G"], -1).T

    return view


def _v_groupnorm(g, rng, stress):
    return _norm_values(_images, _group_columns(g), lambda g: g["C"])(g, rng, stress)


# eps (and group norm's groups) are static, positional after the arrays (the checker's
# convention); the layers take them as keyword arguments.
def _with_eps(fwd, *names):
    def f(*args):
        n = len(args) - len(names)
        return fwd(*args[:n], **dict(zip(names, args[n:])))

    return f


def _norm_spec(name, draw, values, static=lambda g: (EPS,), names=("eps",)):
    return OpSpec(name, "layer", ("x", "gamma", "beta"), draw, values,
                  _with_eps(getattr(ops, f"{name}_forward"), *names), _with_eps(getattr(npl, f"{name}_forward"), *names),
                  getattr(ops, f"{name}_backward"), getattr(npl, f"{name}_backward"), static, edges=EDGES[name])


SPECS = (
    _norm_spec("batchnorm", _g_rows, _norm_values(_rows, lambda x: x, lambda g: g["D"])),
    _norm_spec("layernorm", _g_rows, _norm_values(_rows, lambda x: x.T, lambda g: g["D"])),
    _norm_spec("temporal_layernorm", _g_steps, _norm_values(_steps, lambda x: x.reshape(-1, x.shape[-1]).T,
                                                             lambda g: g["D"])),
    _norm_spec("spatial_batchnorm", _g_images, _norm_values(_images, _channel_columns, lambda g: g["C"])),
    _norm_spec("spatial_groupnorm", _g_groups, _v_groupnorm, static=lambda g: (g["G"], EPS),
               names=("groups", "eps")),
)
