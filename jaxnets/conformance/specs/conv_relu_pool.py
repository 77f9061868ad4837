"""The fused conv -> ReLU -> max-pool layer's spec: stress inputs are small integers (ReLU
inputs exactly 0, tied maxima in pool windows); ordinary inputs are redrawn until every ReLU
input and every window's gap to its runner-up is clear of the finite-difference steps."""
from __future__ import annotations

import numpy as np

from jaxnets import ops
from jaxnets.conformance.opspec import layer_spec
from jaxnets.conformance.specs.inputs import ATTEMPTS
from jaxnets.conformance.specs.pool import window_gap
from jaxnets.gradcheck.tolerances import FD_STEP, KINK_MARGIN
from reference_numpy import layers as npl


def _g_conv_relu_pool(draw):
    hh, ww, pad, pool = draw("HH", 1, 3), draw("WW", 1, 3), draw("pad", 0, 2), draw("pool", 1, 3)
    return {
        "N": draw("N", 1, 2), "C": draw("C", 1, 3), "F": draw("F", 1, 3), "HH": hh, "WW": ww,
        "H": max(1, pool + hh - 1 - 2 * pad) + draw("H extra", 0, 3),
        "W": max(1, pool + ww - 1 - 2 * pad) + draw("W extra", 0, 3), "pad": pad, "pool": pool,
    }


EDGES = {
    "conv_relu_pool": (
        # C > 1, non-square kernel; the last column is read by no pool window
        {"N": 2, "C": 3, "F": 2, "HH": 3, "WW": 2, "H": 6, "W": 7, "pad": 1, "pool": 2},
        # the ConvNet's 3x3 / pad 1 / 2x2 pool, batch 1
        {"N": 1, "C": 1, "F": 3, "HH": 3, "WW": 3, "H": 8, "W": 8, "pad": 1, "pool": 2},
        # 3x3 pool, pad 0, rows and columns dropped
        {"N": 2, "C": 2, "F": 2, "HH": 2, "WW": 3, "H": 7, "W": 6, "pad": 0, "pool": 3},
        # 1x1 kernel, no pooling (pool 1), wide zero border
        {"N": 1, "C": 2, "F": 1, "HH": 1, "WW": 1, "H": 4, "W": 5, "pad": 2, "pool": 1},
    ),
}


def relu_pool_kink_distance(z, pool):
    """How far conv outputs z are from the kinks of ReLU then a pool x pool max pool of
    stride pool: min |z| and the window gaps of relu(z)."""
    return min(float(np.min(np.abs(z))), window_gap(np.maximum(z, 0.0), pool, pool, pool))


def _v_conv_relu_pool(g, rng, stress):
    shapes = ((g["N"], g["C"], g["H"], g["W"]), (g["F"], g["C"], g["HH"], g["WW"]), (g["F"],))
    if stress:  # small integers: ReLU inputs exactly 0, tied maxima in pool windows
        return tuple(rng.integers(-2, 3, s).astype(np.float64) for s in shapes), (), False
    for _ in range(ATTEMPTS):  # kink-free draws, so that finite differences are valid
        arrays = tuple(rng.standard_normal(s) for s in shapes)
        z = npl.conv_forward(*arrays, 1, g["pad"])[0]
        reach = 4.0 * FD_STEP * max(1.0, *(float(np.max(np.abs(a))) for a in arrays))
        if relu_pool_kink_distance(z, g["pool"]) > max(reach, KINK_MARGIN):
            return arrays, (), True
    return arrays, (), False


SPECS = (
    layer_spec("conv_relu_pool", ("x", "w", "b"), _g_conv_relu_pool, _v_conv_relu_pool,
               (ops.conv_relu_pool_forward, ops.conv_relu_pool_backward),
               (npl.conv_relu_pool_forward, npl.conv_relu_pool_backward), EDGES["conv_relu_pool"],
               static=lambda g: (g["pad"], g["pool"])),
)
