"""Specs of the recurrent layers of `jaxnets/ops/rnn.py` — the vanilla RNN and the LSTM, a step
and a sequence each — and what the GRU's (`specs/gru.py`) share with them: the geometries, the
input generator and the shape of a recurrent layer's `OpSpec` (several outputs: `n_out`).

Stress inputs saturate gates (bias entries of +-[50, 400], so sigmoid and tanh round to
exactly 0, +-1 and their derivatives to 0 or an exact tiny value); the LSTM's units saturate in
two safe patterns, "remember" (i = 0, f = 1: c carried unchanged) and "overwrite" (i = 1,
f = 0): with f = i = 1 the cell would grow by 1 per step into the zone where 1 - tanh(c)^2
cancels (~eps / (1 - tanh^2) between correct codes). The GRU's candidate n is not
saturated: at n = +-1 with z between 0 and 1, h converges to n geometrically and the h - n
of dz cancels the same way over a long sequence. Pre-activations between ~8 and ~37 are
avoided for the same reason (weights scaled 1 / sqrt(fan-in)). Long sequences (T = 20-30)
are edge geometries.
"""
from __future__ import annotations

import numpy as np

from jaxnets import ops
from jaxnets.conformance.opspec import OpSpec
from jaxnets.conformance.specs.inputs import weight
from reference_numpy import layers as npl

#: saturated pre-activations: sigmoid / tanh round to exactly 0, 1 or +-1 beyond ~37
SATURATED = (50.0, 400.0)


def _saturate(rng, b, fraction=0.5):
    """b with a `fraction` of its entries replaced by +-SATURATED values."""
    big = rng.uniform(*SATURATED, b.shape) * rng.choice([-1.0, 1.0], b.shape)
    return np.where(rng.random(b.shape) < fraction, big, b)


def step_geometry(draw):
    return {"N": draw("N", 1, 3), "D": draw("D", 1, 4), "H": draw("H", 1, 4)}


def sequence_geometry(draw):
    return {"N": draw("N", 1, 3), "T": draw("T", 1, 6), "D": draw("D", 1, 4), "H": draw("H", 1, 4)}


def _lstm_bias(rng, hidden, stress):
    """b (4H,); stress saturates units in the safe patterns of the module docstring, and o and
    g at random."""
    b = rng.standard_normal(4 * hidden)
    if not stress:
        return b
    i, f, o, g = (b[k * hidden:(k + 1) * hidden] for k in range(4))  # views into b

    def big():
        return rng.uniform(*SATURATED)

    for j in range(hidden):
        mode = rng.integers(0, 3)
        if mode == 1:  # remember: i = 0, f = 1
            i[j], f[j] = -big(), big()
        elif mode == 2:  # overwrite: i = 1, f = 0
            i[j], f[j] = big(), -big()
        if rng.random() < 0.5:
            o[j] = rng.choice([-1.0, 1.0]) * big()
        if rng.random() < 0.5:
            g[j] = rng.choice([-1.0, 1.0]) * big()
    return b


def recurrent_values(gates, step, n_bias=1, cell=False):
    """Values for a recurrent step (x, prev_h[, prev_c], Wx, Wh, b[, bh]) or sequence
    (x, h0, Wx, Wh, b[, bh]); stress saturates gates through the biases."""

    def values(g, rng, stress):
        n, d, h = g["N"], g["D"], g["H"]
        x = rng.standard_normal((n, d) if step else (n, g["T"], d))
        states = [rng.standard_normal((n, h)) for _ in range(2 if cell else 1)]
        Wx, Wh = weight(rng, d, (d, gates * h)), weight(rng, h, (h, gates * h))
        if gates == 4:
            biases = [_lstm_bias(rng, h, stress)]
        else:
            biases = [rng.standard_normal(gates * h) for _ in range(n_bias)]
            if stress:  # the RNN's tanh; the GRU's r and z but not its candidate n (docstring)
                biases[0][:2 * h] = _saturate(rng, biases[0][:2 * h])
        return (x, *states, Wx, Wh, *biases), (), not stress

    return values


def recurrent_spec(name, params, values, draw, edges, n_out=1):
    return OpSpec(name, "layer", params, draw, values, getattr(ops, f"{name}_forward"),
                  getattr(npl, f"{name}_forward"), getattr(ops, f"{name}_backward"),
                  getattr(npl, f"{name}_backward"), edges=edges, stress_in_float32=False, n_out=n_out)


EDGES = {
    "rnn_step": ({"N": 1, "D": 1, "H": 1}, {"N": 3, "D": 4, "H": 2}, {"N": 2, "D": 2, "H": 4}),
    "rnn": ({"N": 2, "T": 30, "D": 3, "H": 4},  # long: the gradient carried through 30 steps
            {"N": 1, "T": 1, "D": 2, "H": 3}, {"N": 3, "T": 5, "D": 1, "H": 1}),
    "lstm_step": ({"N": 1, "D": 1, "H": 1}, {"N": 3, "D": 4, "H": 2}, {"N": 2, "D": 2, "H": 3}),
    "lstm": ({"N": 2, "T": 20, "D": 3, "H": 3}, {"N": 1, "T": 1, "D": 2, "H": 2}, {"N": 3, "T": 4, "D": 1, "H": 1}),
}

SPECS = (
    recurrent_spec("rnn_step", ("x", "prev_h", "Wx", "Wh", "b"), recurrent_values(1, True), step_geometry,
                   EDGES["rnn_step"]),
    recurrent_spec("rnn", ("x", "h0", "Wx", "Wh", "b"), recurrent_values(1, False), sequence_geometry, EDGES["rnn"]),
    recurrent_spec("lstm_step", ("x", "prev_h", "prev_c", "Wx", "Wh", "b"), recurrent_values(4, True, cell=True),
                   step_geometry, EDGES["lstm_step"], n_out=2),
    recurrent_spec("lstm", ("x", "h0", "Wx", "Wh", "b"), recurrent_values(4, False), sequence_geometry,
                   EDGES["lstm"]),
)
