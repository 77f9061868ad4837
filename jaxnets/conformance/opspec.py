"""`OpSpec`: how the equivalence checks exercise one op (the registry's entries, `specs/<family>.py`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from jaxnets import ops


@dataclass(frozen=True)
class OpSpec:
    """How to exercise one op: its geometry space, inputs, and the five implementations.

    Layer ops: `jax_forward(*arrays, *static) -> (out, cache)`, `jax_backward(dout, cache)`,
    and the NumPy pair likewise; `static(geometry)` gives the static values (stride, pad, pool
    sizes, eps...) passed after the arrays. Loss ops: `jax_forward(v, *targets) -> (value,
    grad)` (no backward) and `np_forward` likewise. `edges`: the hand-picked geometries every
    run checks. `field` names the `jaxnets.ops.Layers` function (default: `name`); `call`, if
    given, adapts it to the (arrays, static) calling convention (e.g. a key from a seed).
    """

    name: str
    kind: str
    params: tuple
    draw_geometry: Callable
    values: Callable
    jax_forward: Callable
    np_forward: Callable
    jax_backward: Callable | None = None
    np_backward: Callable | None = None
    static: Callable = lambda g: ()
    edges: tuple = ()
    field: str = ""
    #: whether stress inputs are meaningful in float32: not where they saturate or underflow
    #: (1 - out at tanh/sigmoid's tails, softmax probabilities of e^-300), since float32 vs
    #: float64 then compares rounding noise; kinks and ties are exact in float32 and stay in.
    stress_in_float32: bool = True
    call: Callable | None = None
    #: names among `params` of array inputs that get no gradient (word indices, boolean
    #: masks, possibly None): the backward returns the others' gradients only
    no_grad: tuple = ()
    #: outputs before the cache (`lstm_step_forward -> (next_h, next_c, cache)`: 2); the
    #: backward then takes one upstream gradient per output
    n_out: int = 1
    #: for ops with gradient entries that are exactly 0 in exact arithmetic but computed as
    #: rounding noise (attention's dbk, a query that sees one key), every entry is compared at
    #: least at this fraction of the gradient's scale; None: cs231n's plain relative error
    scale_floor: float | None = None

    @property
    def grad_params(self):
        return tuple(p for p in self.params if p not in self.no_grad)

    def _layer_fn(self, layers):
        fn = getattr(layers, self.field or self.name)
        return self.call(fn) if self.call else fn

    @property
    def autodiff(self):
        return self._layer_fn(ops.AUTODIFF)

    @property
    def custom_vjp(self):
        return self._layer_fn(ops.CUSTOM_VJP)


def layer_spec(name, params, draw, values, jax_pair, np_pair, edges, static=lambda g: ()):
    """A layer's OpSpec from its (forward, backward) pairs in JAX and in NumPy."""
    return OpSpec(name, "layer", params, draw, values, jax_pair[0], np_pair[0], jax_pair[1], np_pair[1], static,
                  edges=edges)
