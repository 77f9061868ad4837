"""Inverted dropout (Srivastava et al. 2014; cs231n assignment 2): in training, each value is
kept with probability 1 - rate and scaled by 1 / (1 - rate), so the expected output is the
input and inference needs no rescaling; in inference (or with rate 0) the layer is the identity.

The mask comes from `dropout_noise(key, shape)`: float32 uniform draws u in [0, 1), and a value
is kept where u >= rate. The draws do not depend on x's dtype, so float32 and float64 runs (and
the NumPy twin, which takes the same draws) drop the same values.
"""
from functools import partial

import jax
import jax.numpy as jnp

__all__ = ["dropout_noise", "dropout_forward", "dropout_backward"]


def dropout_noise(key, shape):
    """The uniform draws in [0, 1), float32, that decide which values dropout keeps."""
    return jax.random.uniform(key, shape, jnp.float32)


def _check_rate(rate):
    if not (isinstance(rate, (int, float)) and 0 <= rate < 1):
        raise ValueError(f"dropout: rate (the probability of dropping) must be in [0, 1), got {rate!r}")


def dropout_forward(x, key, *, rate=0.5, train=True):
    """Return `(out, cache)`: out = x * mask, mask = (u >= rate) / (1 - rate) with
    u = dropout_noise(key, x.shape); the cache is the mask (None for the identity: train
    False or rate 0). `rate` is the probability of dropping (PyTorch's `p`, default 0.5;
    cs231n's `p` is the probability of keeping)."""
    _check_rate(rate)
    if not train or rate == 0:
        return x, None
    keep = dropout_noise(key, x.shape) >= rate
    mask = jnp.where(keep, jnp.asarray(1 / (1 - rate), x.dtype), jnp.zeros((), x.dtype))
    return x * mask, mask


def dropout_backward(dout, cache):
    """dx = dout * mask (cs231n dropout_backward): the same kept values, scaled by the same
    1 / (1 - rate); the identity when the forward was."""
    return dout if cache is None else dout * cache


def _dropout_value(x, key, rate=0.5, train=True):
    return dropout_forward(x, key, rate=rate, train=train)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _dropout(x, key, rate=0.5, train=True):
    return dropout_forward(x, key, rate=rate, train=train)[0]


def _dropout_fwd(x, key, rate=0.5, train=True):
    return dropout_forward(x, key, rate=rate, train=train)


def _dropout_bwd(rate, train, cache, dout):
    return dropout_backward(dout, cache), None  # the key gets no gradient


_dropout.defvjp(_dropout_fwd, _dropout_bwd)

LAYERS = {"dropout": (_dropout_value, _dropout)}
