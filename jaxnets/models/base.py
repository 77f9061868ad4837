"""The `Model` record every network is described by, and the helpers the models share."""
import dataclasses
from typing import Callable, NamedTuple, Optional

import jax.numpy as jnp

from jaxnets.ops import l2_penalty


def no_state():
    """The state of a model without any: {}."""
    return {}


class FastGradient(NamedTuple):
    """A model's hand-written gradient laid out for speed.

    make(decode, layout) -> `(params, state, x, y, key) -> (loss, grads, new_state)`, the
    signature of `Model.loss_and_grads`, equal to it up to float rounding on decode(x)
    (decode None: x as given; layout: the `jaxnets.ops.Layout` whose forms to take).
    threads_state: whether it computes the new state and uses the key like `loss_and_grads`
    does; one that does not (`stateless_fast`) is refused for a model with state or dropout,
    when the Model is built.
    """

    make: Callable
    threads_state: bool


def stateless_fast(make):
    """A FastGradient from `make(decode, layout) -> (params, x, y) -> (loss, grads)`, for a
    model without state or dropout: the state ({}) is returned as given, the key unused."""

    def full(decode=None, layout=None):
        fn = make(decode, layout)

        def gradient(params, state, x, y, key=None):
            return (*fn(params, x, y), state)

        return gradient

    return FastGradient(full, threads_state=False)


@dataclasses.dataclass(frozen=True, eq=False)
class Model:
    """A network as plain functions over a params dict (a pytree), plus the facts callers
    need about it, so that nothing outside `jaxnets.models` switches on a model's name.

    Every model's loss and gradient have ONE signature: the state (batch norm's running
    statistics; {} for a model without) is always passed and the new state returned, and a
    PRNG key (dropout's masks) is always accepted (None is fine for a model without dropout).

    init(key) -> params
    loss(params, state, x, y, key=None, layers=AUTODIFF) -> (loss, new_state): the scalar
        mean loss (+ L2 penalty when reg > 0) in training mode, with `layers`' differentiable
        functions (autodiff or custom_vjp mode); new_state: the running statistics updated
        with this batch's (never mutating `state`)
    loss_and_grads(params, state, x, y, key=None, layout=None) -> (loss, grads, new_state):
        the MANUAL mode, backward pairs in reverse, in `layout`'s forms (None: the default
        backend's)
    fast_gradient: a `FastGradient` (the same gradient laid out for speed, e.g. the one-pass
        MLP gradient, the fused conv-ReLU-pool ConvNet), or None
    scores(params, x, layers=AUTODIFF, state=None) -> logits ((N, C); a binary model gives
        (N,)), in inference mode (batch norm with the running statistics in `state`)
    predict(params, x, state=None) -> (N,) integer labels
    init_state() -> the state a new model starts from ({} without batch norm)
    noise: `noise(key, n)` -> the uniform draws the dropout layers take from `key` for a batch
        of n (what the NumPy twin is given); None for a model without dropout
    input_shape: the shape of one example (x is (N, *input_shape))
    num_classes: labels are integers 0..num_classes-1 (a binary model: 2)
    binary: one logit per example, targets are 0/1 floats (y is (N,) either way)
    conv_filters: the parameter holding the first convolution's filters (F, C, HH, WW), for
        pictures of them; None for models without one
    token_inputs: x holds integer token ids in 0..num_classes-1 (a language model), not floats
    label_shape: the shape of one example's labels: () (one label per example), or e.g. (T,)
        for a target per time step, where a target < 0 means "no target" (padding: neither
        scored nor counted)

    A Model is immutable and, like a function, compares by identity: compiled programs are
    cached per Model object (`jaxnets.programs`), so build a model once and reuse it.
    """

    name: str
    config: dict
    init: Callable
    scores: Callable
    loss: Callable
    loss_and_grads: Callable
    predict: Callable
    input_shape: tuple
    num_classes: int
    binary: bool = False
    conv_filters: Optional[str] = None
    fast_gradient: Optional[FastGradient] = None
    init_state: Callable = no_state
    noise: Optional[Callable] = None
    token_inputs: bool = False
    label_shape: tuple = ()

    def __post_init__(self):
        fast = self.fast_gradient
        if fast is not None and not isinstance(fast, FastGradient):
            raise ValueError(f"model {self.name!r}: fast_gradient must be a FastGradient, got {fast!r}")
        if fast is not None and not fast.threads_state and (self.stateful or self.stochastic):
            raise ValueError(
                f"model {self.name!r} has {'state' if self.stateful else 'dropout'}, but its fast gradient "
                "ignores state and key (stateless_fast); give it one that threads them, or none")

    @property
    def stateful(self):
        """Whether the model carries state (batch norm's running statistics)."""
        return self.init_state is not no_state

    @property
    def stochastic(self):
        """Whether the training loss draws from its key (dropout)."""
        return self.noise is not None

    def replace(self, **changes):
        """A new Model with `changes` (checked like any other)."""
        return dataclasses.replace(self, **changes)


#: name -> factory of every model (`register_model`); the name is also the Model's `name`.
MODELS = {}
def register_model(name):
    """Decorator: list the factory under `name` in MODELS (how checkpoints, `predict` and the
    verification suite find a model from its stored name and config)."""

    def register(factory):
        if name in MODELS:
            raise RuntimeError(f"model {name!r} is registered twice")
        MODELS[name] = factory
        return factory

    return register


def build_model(name, config):
    """The model `name` of MODELS from a stored (JSON) config, e.g. a run's or a checkpoint's."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    if not isinstance(config, dict):
        raise ValueError(f"model {name!r}: its config must be a dict of the factory's arguments, got {config!r}")
    config = dict(config)
    if isinstance(config.get("input_shape"), list):  # JSON stores the tuple as a list
        config["input_shape"] = tuple(config["input_shape"])
    try:
        return MODELS[name](**config)
    except TypeError as err:  # an argument the factory does not take (an edited or foreign config)
        raise ValueError(f"model {name!r}: config {config} does not fit its factory ({err})") from None


def argmax_predict(scores_fn):
    """predict(params, x) = argmax of the scores (002's `predict`, applied to the hidden
    activations — the document's version fed X to the second layer, an erratum)."""

    def predict(params, x, state=None):
        return jnp.argmax(scores_fn(params, x), axis=1)

    return predict


def add_l2_penalty(value, grads, params, reg, names=("W1", "W2")):
    """002's weight decay in a manual gradient: `value + sum 0.5*reg*|W|^2` and `dW + reg*W`
    for each weight matrix in `names` (the `l2_penalty` pair); unchanged when reg is 0."""
    if not reg:
        return value, grads
    grads = dict(grads)
    for name in names:
        q, dq = l2_penalty(params[name], reg)
        value, grads[name] = value + q, grads[name] + dq
    return value, grads


def decoded(decode, x, dtype):
    """`decode(x)` (stored inputs, e.g. uint8 pixels, to model inputs), or x cast to `dtype`
    when there is nothing to decode."""
    return decode(x) if decode is not None else x.astype(dtype)
