"""The affine layer's spec: edges with batch 1, (N, d1, d2, d3) inputs flattened, one output
unit, and D == M (where a transposed dw still has the right shape); stress inputs are small
integers, exact zeros and repeated values (the layer is linear: finite differences hold)."""
from __future__ import annotations

import numpy as np

from jaxnets import ops
from jaxnets.conformance.opspec import layer_spec
from reference_numpy import layers as npl


def _g_affine(draw):
    n, k = draw("N", 1, 4), draw("feature dims", 1, 3)
    return {"x": (n, *(draw(f"d{i + 1}", 1, 3) for i in range(k))), "M": draw("M", 1, 4)}


EDGES = {
    "affine": (
        {"x": (1, 3), "M": 2},  # batch 1
        {"x": (2, 2, 3, 2), "M": 3},  # (N, d1, d2, d3) flattened
        {"x": (3, 4), "M": 1},  # one output unit (occupancy's output layer)
        {"x": (3, 3), "M": 3},  # D == M: a transposed dw has the right shape
    ),
}


def _v_affine(g, rng, stress):
    d = int(np.prod(g["x"][1:]))
    shapes = (g["x"], (d, g["M"]), (g["M"],))
    if stress:  # small integers: exact zeros and repeated values, still smooth (linear)
        return tuple(rng.integers(-2, 3, s).astype(np.float64) for s in shapes), (), True
    return tuple(rng.standard_normal(s) for s in shapes), (), True


SPECS = (
    layer_spec("affine", ("x", "w", "b"), _g_affine, _v_affine,
               (ops.affine_forward, ops.affine_backward), (npl.affine_forward, npl.affine_backward), EDGES["affine"]),
)
