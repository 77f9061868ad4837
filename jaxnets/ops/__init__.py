"""Layers as (forward, backward) pairs, and the two sets of differentiable functions built
from them: AUTODIFF (jax.grad differentiates the forward) and CUSTOM_VJP (jax.grad calls the
hand-written backward). Names follow the documents (000 and 002/cs231n).

Every module below lists its pairs in `__all__` and its differentiable functions in
`LAYERS = {name: (pair, custom_vjp function)}`; the `Layers` record and the two sets are built
from those, so a new layer is added in its own module only (a new module: one import here).

A `Layers` record also carries the `Layout` its layout-dependent layers take (`layers.conv(x,
w, b, stride, pad, layers.layout)`); AUTODIFF and CUSTOM_VJP carry None, the default
backend's. `jaxnets.grads` makes the records of each gradient mode with an explicit layout.

`manual_vjp(forward, backward)` wires a pair of your own the same way (`loss_vjp` a loss that
returns its gradient): `jax.grad` of the result runs your backward.
"""
import inspect
from typing import Callable, NamedTuple, Optional

from jaxnets.ops import (activations, attention, conv, conv_relu_pool, dense, dropout, gru, losses, norm, pool, rnn,
                         sequence)
from jaxnets.ops.activations import *  # noqa: F403 - each module's __all__ is its public pairs
from jaxnets.ops.attention import *  # noqa: F403
from jaxnets.ops.conv import *  # noqa: F403
from jaxnets.ops.conv_relu_pool import *  # noqa: F403
from jaxnets.ops.dense import *  # noqa: F403
from jaxnets.ops.dropout import *  # noqa: F403
from jaxnets.ops.gru import *  # noqa: F403
from jaxnets.ops.losses import *  # noqa: F403
from jaxnets.ops.norm import *  # noqa: F403
from jaxnets.ops.pool import *  # noqa: F403
from jaxnets.ops.layout import Layout, default_layout
from jaxnets.ops.rnn import *  # noqa: F403
from jaxnets.ops.sequence import *  # noqa: F403
from jaxnets.ops.vjp import loss_vjp, manual_vjp

MODULES = (dense, activations, conv, pool, conv_relu_pool, norm, dropout, losses, rnn, gru, sequence, attention)


def _entries():
    entries = {}
    for module in MODULES:
        for name, entry in module.LAYERS.items():
            if name in entries:
                raise RuntimeError(f"layer {name!r} is declared twice ({module.__name__})")
            entries[name] = entry
    return entries


def _value(pair, n_out=1):
    """The function autodiff differentiates: the pair's first result, or its first `n_out`
    results as a tuple for a multi-output forward (`(next_h, next_c, cache)`)."""

    def f(*args, **kwargs):
        res = pair(*args, **kwargs)
        return res[0] if n_out == 1 else tuple(res[:n_out])

    f.__name__ = pair.__name__
    f.__signature__ = inspect.signature(pair)
    return f


_ENTRIES = _entries()

#: The differentiable functions a model's loss is written with, one field per layer
#: (`layers.affine(x, w, b)`, `layers.softmax_loss(scores, y)`, ...; a layer with several
#: outputs returns them as a tuple), and the layout the layout-dependent ones are given
#: (`layers.layout`; None: the default backend's).
Layers = NamedTuple("Layers", [(name, Callable) for name in _ENTRIES] + [("layout", Optional[Layout])])
AUTODIFF = Layers(*(_value(pair, getattr(fn, "n_out", 1)) for pair, fn in _ENTRIES.values()), None)
CUSTOM_VJP = Layers(*(fn for _, fn in _ENTRIES.values()), None)

__all__ = ["AUTODIFF", "CUSTOM_VJP", "Layers", "MODULES", "Layout", "default_layout", "manual_vjp", "loss_vjp"] + [
    name for module in MODULES for name in module.__all__
]
