"""Dropout's spec: a fixed key per geometry (the mask is part of the op; the NumPy twin is given
the same uniform draws), rates from 0 (the identity) to 0.9; stress inputs are small
integers (for a fixed mask the layer is linear: finite differences hold)."""
from __future__ import annotations

import jax
import numpy as np

from jaxnets import ops
from jaxnets.conformance.opspec import OpSpec
from reference_numpy import layers as npl

RATES = (0.0, 0.25, 0.5, 0.9)


def _g_dropout(draw):
    return {"x": tuple(draw(f"dim{i}", 1, 4) for i in range(draw("ndim", 1, 3))),
            "rate": RATES[draw("rate index", 0, len(RATES) - 1)], "key": draw("key", 0, 3)}


EDGES = {
    "dropout": ({"x": (1, 5), "rate": 0.5, "key": 0}, {"x": (2, 3, 4), "rate": 0.25, "key": 1},
                {"x": (7,), "rate": 0.0, "key": 2}, {"x": (3, 4), "rate": 0.9, "key": 3}),
}


def _v_dropout(g, rng, stress):
    x = rng.integers(-2, 3, g["x"]).astype(np.float64) if stress else rng.standard_normal(g["x"])
    return (x,), (), True  # linear in x for a fixed mask


def _seeded(fn):
    """`fn(x, key, rate)` called as `f(x, seed, rate)`: the key is a static seed of the case."""
    return lambda x, seed, rate: fn(x, jax.random.key(seed), rate)


def _np_dropout(x, seed, rate):
    return npl.dropout_forward(x, np.asarray(ops.dropout_noise(jax.random.key(seed), np.shape(x))), rate=rate)


SPECS = (
    OpSpec("dropout", "layer", ("x",), _g_dropout, _v_dropout,
           lambda x, seed, rate: ops.dropout_forward(x, jax.random.key(seed), rate=rate), _np_dropout,
           ops.dropout_backward, npl.dropout_backward, lambda g: (g["key"], g["rate"]), edges=EDGES["dropout"],
           call=_seeded),
)
