"""Wire a hand-written (forward, backward) pair into `jax.custom_vjp`.

`jax.grad` of the returned function runs the pair's backward instead of differentiating the
forward, so the "custom_vjp" gradient mode uses exactly the code of the "manual" mode.
"""
import inspect

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

    def primal(*args):
        return _outputs(forward(*args), n_out)

    signature = positional_signature(forward)
    if signature is not None:  # jax.custom_vjp binds arguments to it: names, defaults
        primal.__signature__ = signature
    f = jax.custom_vjp(primal, nondiff_argnums=nondiff_argnums)

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
    return f


def positional_signature(forward):
    """`forward`'s signature when every argument can be given positionally (then
    `jax.custom_vjp` binds a call to it: arguments by name, omitted ones taking `forward`'s
    defaults, as `CUSTOM_VJP.batchnorm(x, gamma, beta)` with eps=1e-5); None for a forward
    with `*args`, `**kwargs` or keyword-only arguments."""
    try:
        sig = inspect.signature(forward)
    except (TypeError, ValueError):
        return None
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.KEYWORD_ONLY) for p in sig.parameters.values()):
        return None
    return sig


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
