"""Specs of the GRU, a step and a sequence, built like the other recurrent layers'
(`specs/rnn.py`, whose docstring says why the candidate n is never saturated)."""
from __future__ import annotations

from jaxnets.conformance.specs.rnn import recurrent_spec, recurrent_values, sequence_geometry, step_geometry

EDGES = {
    "gru_step": ({"N": 1, "D": 1, "H": 1}, {"N": 3, "D": 4, "H": 2}, {"N": 2, "D": 2, "H": 3}),
    "gru": ({"N": 2, "T": 20, "D": 3, "H": 3}, {"N": 1, "T": 1, "D": 2, "H": 2}, {"N": 3, "T": 4, "D": 1, "H": 1}),
}

SPECS = (
    recurrent_spec("gru_step", ("x", "prev_h", "Wx", "Wh", "b", "bh"), recurrent_values(3, True, 2), step_geometry,
                   EDGES["gru_step"]),
    recurrent_spec("gru", ("x", "h0", "Wx", "Wh", "b", "bh"), recurrent_values(3, False, 2), sequence_geometry,
                   EDGES["gru"]),
)
