"""Specs of the activations: ReLU, tanh, sigmoid, the leaky ReLU and the GELU (the block's MLP).

Stress inputs: exact zeros into the (leaky) ReLU's kink (ReLU'(0) = 0, slope alpha there; no
finite differences); tanh and sigmoid saturated (below); the GELU's tails, |x| in [3, 20].
"""
from __future__ import annotations

import numpy as np

from jaxnets import ops
from jaxnets.conformance.opspec import OpSpec, layer_spec
from jaxnets.gradcheck.tolerances import KINK_MARGIN
from reference_numpy import layers as npl


def _g_elementwise(draw):
    return {"x": tuple(draw(f"dim{i}", 1, 4) for i in range(draw("ndim", 1, 4)))}


def _g_leaky(draw):
    return {"x": tuple(draw(f"dim{i}", 1, 4) for i in range(draw("ndim", 1, 3))),
            "alpha": draw("alpha (%)", 1, 30) / 100}


def _g_gelu(draw):
    return {"x": tuple(draw(f"dim{i}", 1, 4) for i in range(draw("ndim", 1, 3)))}


EDGES = {
    "relu": ({"x": (1, 5)}, {"x": (2, 3, 4, 4)}, {"x": (7,)}),
    "tanh": ({"x": (1, 5)}, {"x": (2, 3, 4, 4)}, {"x": (7,)}),
    "sigmoid": ({"x": (1, 5)}, {"x": (2, 3, 4, 4)}, {"x": (7,)}),
    "leaky_relu": ({"x": (1, 5), "alpha": 0.01}, {"x": (2, 3, 4), "alpha": 0.2}, {"x": (7,), "alpha": 0.1}),
    "gelu": ({"x": (1, 5)}, {"x": (2, 3, 4)}, {"x": (7,)}),
}


def _v_relu(g, rng, stress):
    x = rng.standard_normal(g["x"])
    if stress:  # exact zeros (both signs) into the kink, FD invalid there
        u = rng.random(x.shape)
        x = np.where(u < 0.3, 0.0, np.where(u < 0.4, -0.0, x))
        return (x,), (), False
    return (np.where(x >= 0, 1.0, -1.0) * (KINK_MARGIN + np.abs(x)),), (), True


def _v_smooth(scale, saturated):
    """Ordinary inputs scale * N(0, 1); stress mixes in saturated ones, |x| in [saturated, 400],
    where tanh / sigmoid round to exactly +-1 / 1 (or a tiny exact-enough value), the
    gradient underflows to 0 or below FD's noise floor (so no FD). Between the two, 1 - out**2
    and 1 - out cancel: every implementation is then off by ~eps / (1 - out) relatively, as
    the derivative is written in terms of the rounded output (000), so the zone is skipped."""

    def values(g, rng, stress):
        x = rng.standard_normal(g["x"]) * scale
        if stress:
            big = rng.uniform(saturated, 400.0, x.shape) * rng.choice([-1.0, 1.0], x.shape)
            x = np.where(rng.random(x.shape) < 0.6, big, x)
        return (x,), (), not stress

    return values


def _v_leaky(g, rng, stress):
    x = rng.standard_normal(g["x"])
    if stress:  # exact zeros into the kink
        return (np.where(rng.random(x.shape) < 0.4, 0.0, x),), (), False
    return (np.where(x >= 0, 1.0, -1.0) * (KINK_MARGIN + np.abs(x)),), (), True


def _v_gelu(g, rng, stress):
    x = rng.standard_normal(g["x"]) * 2.0
    if stress:  # the tails, |x| in [3, 20]: Phi(x) near 0 or 1 (beyond ~26, erfc is subnormal)
        x = np.where(rng.random(x.shape) < 0.6, rng.uniform(3.0, 20.0, x.shape) * np.sign(x), x)
    return (x,), (), True


def _smooth(name, scale, stress_scale, jax_pair, np_pair):
    return OpSpec(name, "layer", ("x",), _g_elementwise, _v_smooth(scale, stress_scale), jax_pair[0], np_pair[0],
                  jax_pair[1], np_pair[1], edges=EDGES[name], stress_in_float32=False)


# The leaky ReLU's slope is static, positional after x (the checker's convention).
def _leaky(fwd):
    return lambda x, alpha: fwd(x, alpha=alpha)


SPECS = (
    layer_spec("relu", ("x",), _g_elementwise, _v_relu,
               (ops.relu_forward, ops.relu_backward), (npl.relu_forward, npl.relu_backward), EDGES["relu"]),
    _smooth("tanh", 1.0, 20.0, (ops.tanh_forward, ops.tanh_backward), (npl.tanh_forward, npl.tanh_backward)),
    _smooth("sigmoid", 2.0, 40.0,
            (ops.sigmoid_forward, ops.sigmoid_backward), (npl.sigmoid_forward, npl.sigmoid_backward)),
    OpSpec("leaky_relu", "layer", ("x",), _g_leaky, _v_leaky, _leaky(ops.leaky_relu_forward),
           _leaky(npl.leaky_relu_forward), ops.leaky_relu_backward, npl.leaky_relu_backward,
           lambda g: (g["alpha"],), edges=EDGES["leaky_relu"]),
    OpSpec("gelu", "layer", ("x",), _g_gelu, _v_gelu, ops.gelu_forward, npl.gelu_forward,
           ops.gelu_backward, npl.gelu_backward, edges=EDGES["gelu"]),
)
