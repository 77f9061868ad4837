"""The convolution's spec: edges with C > 1, non-square kernels, stride 2 and 3, pad 0 to 2,
windows that do not fit exactly and a 1x1 kernel; stress inputs are small integers (the layer
is linear in each input: finite differences hold)."""
from __future__ import annotations

import numpy as np

from jaxnets import ops
from jaxnets.conformance.opspec import layer_spec
from reference_numpy import layers as npl


def _g_conv(draw):
    hh, ww, pad = draw("HH", 1, 3), draw("WW", 1, 3), draw("pad", 0, 2)
    return {
        "N": draw("N", 1, 2), "C": draw("C", 1, 3), "F": draw("F", 1, 3), "HH": hh, "WW": ww,
        "H": max(1, hh - 2 * pad) + draw("H extra", 0, 4), "W": max(1, ww - 2 * pad) + draw("W extra", 0, 4),
        "stride": draw("stride", 1, 3), "pad": pad,
    }


EDGES = {
    "conv": (
        # C > 1, non-square kernel, stride 2, pad 1
        {"N": 2, "C": 3, "F": 2, "HH": 3, "WW": 2, "H": 5, "W": 6, "stride": 2, "pad": 1},
        # batch 1, pad 0, non-square the other way
        {"N": 1, "C": 2, "F": 3, "HH": 2, "WW": 3, "H": 4, "W": 5, "stride": 1, "pad": 0},
        # stride 3 with pad 2: windows do not fit exactly, the last rows are dropped
        {"N": 2, "C": 1, "F": 2, "HH": 3, "WW": 3, "H": 5, "W": 5, "stride": 3, "pad": 2},
        # 1x1 kernel
        {"N": 1, "C": 3, "F": 1, "HH": 1, "WW": 1, "H": 3, "W": 3, "stride": 1, "pad": 0},
    ),
}


def _v_conv(g, rng, stress):
    shapes = ((g["N"], g["C"], g["H"], g["W"]), (g["F"], g["C"], g["HH"], g["WW"]), (g["F"],))
    if stress:
        return tuple(rng.integers(-2, 3, s).astype(np.float64) for s in shapes), (), True
    return tuple(rng.standard_normal(s) for s in shapes), (), True


SPECS = (
    layer_spec("conv", ("x", "w", "b"), _g_conv, _v_conv,
               (ops.conv_forward, ops.conv_backward), (npl.conv_forward, npl.conv_backward), EDGES["conv"],
               static=lambda g: (g["stride"], g["pad"])),
)
