"""A planted mistake in the GRU step's backward: the update gate's two conventions swapped."""
from __future__ import annotations

import jax.numpy as jnp

from jaxnets.conformance.mutants.mutant import Mutant
from jaxnets.ops.dense import weight_gradient


def gru_step_backward_update_gate_swapped(dnext_h, cache):
    x, prev_h, Wx, Wh, r, z, n, ahn = cache
    # derived for h' = z n + (1 - z) h (the other paper's convention) while the forward is
    # PyTorch's h' = (1 - z) n + z h: z and 1 - z trade places
    dan = dnext_h * z * (1 - n * n)
    dar = dan * ahn * r * (1 - r)
    daz = dnext_h * (n - prev_h) * z * (1 - z)
    dax = jnp.concatenate([dar, daz, dan], axis=-1)
    dah = jnp.concatenate([dar, daz, dan * r], axis=-1)
    return (dax @ Wx.T, dah @ Wh.T + dnext_h * (1 - z), weight_gradient(x, dax), weight_gradient(prev_h, dah),
            jnp.sum(dax, axis=0), jnp.sum(dah, axis=0))


PLANTED = (
    Mutant("gru_update_gate_swapped", "gru_step", gru_step_backward_update_gate_swapped,
           "backward of h' = z n + (1 - z) h for PyTorch's h' = (1 - z) n + z h"),
)
