"""Wire a hand-written (forward, backward) pair into `jax.custom_vjp`.

`jax.grad` of the returned function runs the pair's backward instead of differentiating the
forward, so the "custom_vjp" gradient mode uses exactly the code of the "manual" mode.
"""
import functools
import inspect
from functools import partial

import jax


def manual_vjp(forward, backward, nondiff_argnums=(), n_out=1, no_grad_argnums=()):
    """Return `f(*args) -> forward(*args)[0]` whose derivative is `backward(dout, cache)`.

    `nondiff_argnums` name static Python arguments (stride, pad, pool sizes); they are passed
    to `forward` in place and are not differentiated. `backward` returns one gradient per
    differentiable argument (a bare array when there is only one).

    `n_out`: a forward with several outputs, `forward(*args) -> (*outs, cache)` (cs231n's
    `lstm_step_forward -> (next_h, next_c, cache)`), has `backward(*douts, cache)`; f then
    returns the tuple of outputs (`f.n_out` records it).
    `no_grad_argnums`: array arguments (positions in f's signature) that get no gradient,
    such as integer indices and boolean masks; `backward` returns the gradients of the other
    arguments only, and JAX is given None (a zero cotangent) for these.
    """
    n_static = len(nondiff_argnums)
    # positions among the arguments JAX wants cotangents for (the static ones are not among them)
    no_grad = {i - sum(s < i for s in nondiff_argnums) for i in no_grad_argnums}

    @partial(jax.custom_vjp, nondiff_argnums=nondiff_argnums)
    def f(*args):
        return _outputs(forward(*args), n_out)

    def f_fwd(*args):
        res = forward(*args)
        return _outputs(res, n_out), res[n_out]

    def f_bwd(*args):
        cache, douts = args[n_static], args[n_static + 1]
        grads = backward(douts, cache) if n_out == 1 else backward(*douts, cache)
        grads = grads if isinstance(grads, tuple) else (grads,)
        if not no_grad:
            return grads
        rest = iter(grads)
        return tuple(None if i in no_grad else next(rest) for i in range(len(grads) + len(no_grad)))

    f.defvjp(f_fwd, f_bwd)
    f.__name__ = forward.__name__.removesuffix("_forward")
    f.__doc__ = f"{forward.__name__} with `{backward.__name__}` as its jax.custom_vjp derivative."
    f.n_out = n_out
    return with_signature(f, forward)


def with_signature(f, forward):
    """`f` called with `forward`'s signature: arguments may be given by name, and omitted ones
    take `forward`'s defaults (`jax.custom_vjp` itself wants every static argument
    positionally: `CUSTOM_VJP.batchnorm(x, gamma, beta)` would fail inside JAX without its eps).
    The custom_vjp object stays reachable as `__wrapped__`. A forward taking `*args` or
    keyword-only arguments is returned unwrapped (its arguments cannot be bound positionally)."""
    sig = inspect.signature(forward)
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.KEYWORD_ONLY) for p in sig.parameters.values()):
        return f

    @functools.wraps(f)
    def call(*args, **kwargs):
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as err:
            raise TypeError(f"{f.__name__}{sig}: {err}") from None
        bound.apply_defaults()
        return f(*bound.args)

    call.__signature__ = sig
    call.n_out = f.n_out
    return call


def _outputs(res, n_out):
    return res[0] if n_out == 1 else tuple(res[:n_out])


def loss_vjp(pair):
    """Wrap a loss `pair(value_input, *targets) -> (loss, dvalue)` as a custom_vjp scalar loss.

    The targets (labels, a mask) get no gradient (None), as in the documents.
    """

    @jax.custom_vjp
    def f(v, *targets):
        return pair(v, *targets)[0]

    def f_fwd(v, *targets):
        loss, dv = pair(v, *targets)
        return loss, (dv, len(targets) * (None,))

    def f_bwd(res, g):
        dv, nones = res
        return (g * dv, *nones)

    f.defvjp(f_fwd, f_bwd)
    f.__name__ = pair.__name__
    f.__doc__ = f"{pair.__name__} (loss only) with its hand-written gradient as jax.custom_vjp."
    return f
