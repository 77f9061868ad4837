"""Registry entries for the layers of cs231n assignments 1-2 beyond the documents: leaky ReLU,
batch norm (and its spatial form), layer norm, spatial group norm, dropout and the SVM loss.

Each entry has, like the documents' ops (`op_specs`), a geometry space, edge geometries and an
input generator whose stress inputs sit on the layer's kinks or degeneracies:
- leaky ReLU: exact zeros (slope alpha there, as ReLU'(0) = 0);
- the norms: a constant group (variance 0: only eps is left, so the function changes on a
  scale of sqrt(eps) and finite differences do not apply), and groups of
  one value (the output is beta, dx exactly 0). Groups of exactly two values are left out:
  they normalise to about +-1 whatever the input, so dx is ~eps/var, a difference of O(1)
  terms that every implementation rounds differently (relative errors ~1e-10 in float64, 10%
  in float32: noise, not a gradient to compare);
- dropout: a fixed key per geometry (the mask is part of the op; the NumPy twin is given the
  same uniform draws), rates from 0 (the identity) to 0.9;
- SVM loss: margins exactly 0 (the hinge's kink: inactive by convention) and tied scores.
"""
import jax
import numpy as np

from jaxnets import ops
from jaxnets.conformance.opspec import OpSpec
from jaxnets.gradcheck.tolerances import FD_STEP, KINK_MARGIN
from reference_numpy import layers as npl

#: a norm's FD is valid only when every group's variance keeps sqrt(var + eps) far above the
#: step: then the function is smooth on the step's scale
_MIN_VAR_FOR_FD = (100 * FD_STEP) ** 2
_ATTEMPTS = 20
EPS = 1e-5
RATES = (0.0, 0.25, 0.5, 0.9)


# ----------------------------------------------------------------------------- geometries

def _g_leaky(draw):
    return {"x": tuple(draw(f"dim{i}", 1, 4) for i in range(draw("ndim", 1, 3))),
            "alpha": draw("alpha (%)", 1, 30) / 100}


def _not_two(m):
    """A group size of 1 or >= 3 (see the module docstring: groups of 2 are left out)."""
    return m + 1 if m == 2 else m


def _g_rows(draw):
    return {"N": _not_two(draw("N", 1, 6)), "D": _not_two(draw("D", 1, 5))}


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


def _g_dropout(draw):
    return {"x": tuple(draw(f"dim{i}", 1, 4) for i in range(draw("ndim", 1, 3))),
            "rate": RATES[draw("rate index", 0, len(RATES) - 1)], "key": draw("key", 0, 3)}


def _g_svm(draw):
    return {"N": draw("N", 1, 5), "C": draw("C", 1, 6)}


EDGES = {
    "leaky_relu": ({"x": (1, 5), "alpha": 0.01}, {"x": (2, 3, 4), "alpha": 0.2}, {"x": (7,), "alpha": 0.1}),
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
    "dropout": ({"x": (1, 5), "rate": 0.5, "key": 0}, {"x": (2, 3, 4), "rate": 0.25, "key": 1},
                {"x": (7,), "rate": 0.0, "key": 2}, {"x": (3, 4), "rate": 0.9, "key": 3}),
    "svm_loss": ({"N": 1, "C": 3}, {"N": 5, "C": 4}, {"N": 4, "C": 10}, {"N": 3, "C": 1}),
}


# ----------------------------------------------------------------------------- inputs

def _v_leaky(g, rng, stress):
    x = rng.standard_normal(g["x"])
    if stress:  # exact zeros into the kink
        return (np.where(rng.random(x.shape) < 0.4, 0.0, x),), (), False
    return (np.where(x >= 0, 1.0, -1.0) * (KINK_MARGIN + np.abs(x)),), (), True


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
        for _ in range(_ATTEMPTS):
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


def _g_steps(draw):
    return {"N": draw("N", 1, 3), "T": draw("T", 1, 4), "D": _not_two(draw("D", 1, 5))}


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


def _v_dropout(g, rng, stress):
    x = rng.integers(-2, 3, g["x"]).astype(np.float64) if stress else rng.standard_normal(g["x"])
    return (x,), (), True  # linear in x for a fixed mask


def _v_svm(g, rng, stress):
    n, c = g["N"], g["C"]
    y = rng.integers(0, c, n)
    if stress:  # integer scores: margins exactly 0 (s_j = s_y - 1) and ties
        s = rng.integers(-2, 3, (n, c)).astype(np.float64)
        s[np.arange(n), rng.integers(0, c, n)] = s[np.arange(n), y] - 1.0
        return (s,), (y,), False
    for _ in range(_ATTEMPTS):  # every margin at least KINK_MARGIN from 0
        s = rng.standard_normal((n, c))
        margins = s - s[np.arange(n), y][:, None] + 1
        margins[np.arange(n), y] = 1.0
        if np.min(np.abs(margins)) > KINK_MARGIN:
            return (s,), (y,), True
    return (s,), (y,), False


# ----------------------------------------------------------------------------- wiring
# The static arguments are positional after the arrays (the checker's convention); the
# layers' own keyword arguments are filled in here.

def _leaky(fwd):
    return lambda x, alpha: fwd(x, alpha=alpha)


def _with_eps(fwd, *names):
    def f(*args):
        n = len(args) - len(names)
        return fwd(*args[:n], **dict(zip(names, args[n:])))

    return f


def _seeded(fn):
    """`fn(x, key, rate)` called as `f(x, seed, rate)`: the key is a static seed of the case."""
    return lambda x, seed, rate: fn(x, jax.random.key(seed), rate)


def _np_dropout(x, seed, rate):
    return npl.dropout_forward(x, np.asarray(ops.dropout_noise(jax.random.key(seed), np.shape(x))), rate=rate)


def _norm_spec(name, draw, values, static=lambda g: (EPS,), names=("eps",)):
    return OpSpec(name, "layer", ("x", "gamma", "beta"), draw, values,
                  _with_eps(getattr(ops, f"{name}_forward"), *names), _with_eps(getattr(npl, f"{name}_forward"), *names),
                  getattr(ops, f"{name}_backward"), getattr(npl, f"{name}_backward"), static, edges=EDGES[name])


SPECS = (
    OpSpec("leaky_relu", "layer", ("x",), _g_leaky, _v_leaky, _leaky(ops.leaky_relu_forward),
           _leaky(npl.leaky_relu_forward), ops.leaky_relu_backward, npl.leaky_relu_backward,
           lambda g: (g["alpha"],), edges=EDGES["leaky_relu"]),
    _norm_spec("batchnorm", _g_rows, _norm_values(_rows, lambda x: x, lambda g: g["D"])),
    _norm_spec("layernorm", _g_rows, _norm_values(_rows, lambda x: x.T, lambda g: g["D"])),
    _norm_spec("temporal_layernorm", _g_steps, _norm_values(_steps, lambda x: x.reshape(-1, x.shape[-1]).T,
                                                             lambda g: g["D"])),
    _norm_spec("spatial_batchnorm", _g_images, _norm_values(_images, _channel_columns, lambda g: g["C"])),
    _norm_spec("spatial_groupnorm", _g_groups, _v_groupnorm, static=lambda g: (g["G"], EPS),
               names=("groups", "eps")),
    OpSpec("dropout", "layer", ("x",), _g_dropout, _v_dropout,
           lambda x, seed, rate: ops.dropout_forward(x, jax.random.key(seed), rate=rate), _np_dropout,
           ops.dropout_backward, npl.dropout_backward, lambda g: (g["key"], g["rate"]), edges=EDGES["dropout"],
           call=_seeded),
    OpSpec("svm_loss", "loss", ("scores",), _g_svm, _v_svm, ops.svm_loss, npl.svm_loss, edges=EDGES["svm_loss"],
           stress_in_float32=True),
)
