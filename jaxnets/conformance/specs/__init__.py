"""The registry of checked ops, filed by op family under the stems of `jaxnets/ops/` and
`reference_numpy/` (`specs/<family>.py`, each with its `SPECS`): for every layer and loss, its
geometry space, edge cases, input generator and its five implementations (the jaxnets pair,
AUTODIFF / CUSTOM_VJP, NumPy). `OPS` holds them in the order of `OP_NAMES`.

A geometry is a dict of ints/tuples drawn by `draw_geometry(draw)`, where `draw(label, lo, hi)`
returns an int in [lo, hi] (hypothesis' st.integers or a seeded numpy generator), so one
function defines the space. A new shape costs a new XLA compilation (~1 s for a conv's three
modes), so the cases come from a fixed pool per op: the op's hand-picked edge geometries
(batch 1, C > 1, pad 0, non-square kernels, stride != pool size, overlapping pools, windows
that do not fit exactly) plus seeded draws from its space, up to POOL_SIZE.

Value generators, `(geometry, rng, stress) -> (differentiable arrays, extras, fd_ok)`: stress
inputs put kinks in on purpose (exact zeros into ReLU, tied maxima in pool windows, saturated
activations, scores of ~1000 for the softmax); the analytic gradients must agree there too
(ReLU'(0) = 0, max-pool gradient to the first maximum in row-major order), but finite
differences are invalid at a kink, so fd_ok is True only for inputs at least KINK_MARGIN from
every kink (10x the largest FD step).

A new op: its geometry space, value generator, edge geometries and `OpSpec` entry in its
family's module (a new family: a new module, listed in `_FAMILIES`), and its name in
`OP_NAMES` here.
"""
from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np

from jaxnets.conformance.specs import (activations, attention, conv, conv_relu_pool, dense, dropout, gru, losses,
                                       norm, pool, rnn, sequence)

#: geometries per op in the pool hypothesis and the report draw from.
POOL_SIZE = 12

#: the sequence layers (issue 20): a compilation per geometry costs seconds (an LSTM over 20
#: steps, a transformer block), so the tests draw fewer examples of them
SEQUENCE_OPS = ("rnn_step", "rnn", "lstm_step", "lstm", "gru_step", "gru", "word_embedding", "temporal_affine",
                "positional_embedding", "last_step", "temporal_softmax_loss", "gelu", "attention",
                "multihead_attention", "transformer_block")

#: the registry's order, which the reports, tables and tests follow: the documents' ops, the
#: layers cs231n's assignments add, then the sequence layers (the order they were added in)
OP_NAMES = ("affine", "relu", "tanh", "sigmoid", "conv", "max_pool", "avg_pool", "conv_relu_pool", "softmax_loss",
            "bce_with_logits", "bce", "l2_penalty", "leaky_relu", "batchnorm", "layernorm", "temporal_layernorm",
            "spatial_batchnorm", "spatial_groupnorm", "dropout", "svm_loss", *SEQUENCE_OPS)

_FAMILIES = (dense, activations, conv, pool, conv_relu_pool, losses, norm, dropout, rnn, gru, sequence, attention)
_BY_NAME = {spec.name: spec for family in _FAMILIES for spec in family.SPECS}
if sorted(_BY_NAME) != sorted(OP_NAMES):  # a spec left out of OP_NAMES would never be checked
    raise ImportError(f"OP_NAMES and the families' SPECS differ: {sorted(set(_BY_NAME) ^ set(OP_NAMES))}")
OPS = {name: _BY_NAME[name] for name in OP_NAMES}


def _seeded_draw(rng):
    return lambda label, lo, hi: int(rng.integers(lo, hi + 1))


@lru_cache(maxsize=None)
def _pool(name, size):
    spec = OPS[name]
    pool = [dict(g) for g in spec.edges]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for _ in range(1000):
        if len(pool) >= size:
            break
        g = spec.draw_geometry(_seeded_draw(rng))
        if g not in pool:
            pool.append(g)
    return tuple(pool)


def geometry_pool(name, size=POOL_SIZE):
    """The op's geometries: its edge geometries first, then seeded draws from its space."""
    return [dict(g) for g in _pool(name, size)]
