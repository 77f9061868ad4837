"""Wire a hand-written (forward, backward) pair into `jax.custom_vjp`.

`jax.grad` of the returned function runs the pair's backward instead of differentiating the
forward, so the "custom_vjp" gradient mode uses exactly the code of the "manual" mode.
"""
from functools import partial

import jax


def manual_vjp(forward, backward, nondiff_argnums=()):
    """Return `f(*args) -> forward(*args)[0]` whose derivative is `backward(dout, cache)`.

    `nondiff_argnums` name static Python arguments (stride, pad, pool sizes); they are passed
    to `forward` in place and are not differentiated. `backward` returns one gradient per
    differentiable argument (a bare array when there is only one).
    """
    n_static = len(nondiff_argnums)

    @partial(jax.custom_vjp, nondiff_argnums=nondiff_argnums)
    def f(*args):
        return forward(*args)[0]

    def f_fwd(*args):
        return forward(*args)

    def f_bwd(*args):
        cache, dout = args[n_static], args[n_static + 1]
        grads = backward(dout, cache)
        return grads if isinstance(grads, tuple) else (grads,)

    f.defvjp(f_fwd, f_bwd)
    f.__name__ = forward.__name__.removesuffix("_forward")
    f.__doc__ = f"{forward.__name__} with `{backward.__name__}` as its jax.custom_vjp derivative."
    return f


def loss_vjp(pair):
    """Wrap a loss `pair(value_input, target) -> (loss, dvalue)` as a custom_vjp scalar loss.

    The target (labels) gets no gradient (None), as in the documents.
    """

    @jax.custom_vjp
    def f(v, target):
        return pair(v, target)[0]

    def f_fwd(v, target):
        return pair(v, target)

    def f_bwd(dv, g):
        return (g * dv, None)

    f.defvjp(f_fwd, f_bwd)
    f.__name__ = pair.__name__
    f.__doc__ = f"{pair.__name__} (loss only) with its hand-written gradient as jax.custom_vjp."
    return f
