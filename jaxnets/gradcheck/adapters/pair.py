"""cs231n's convention as a Subject: a forward/backward pair, or a loss.

- a layer: `forward(*args, **kwargs) -> (*outputs, cache)` and
  `backward(*douts, cache) -> gradients`, one per floating positional argument that is an
  array (a bare array when there is one); dicts (`conv_param`, `bn_param`,
  `dropout_param`), integers and booleans are held fixed. The number of outputs is read from
  the backward's signature (`lstm_step_backward(dnext_h, dnext_c, cache)`: two), and their
  names from its parameters (`next_h`, `next_c`);
- a loss: `forward(scores, *targets) -> (loss, dscores)` alone (`softmax_loss`, `svm_loss`,
  `temporal_softmax_loss(x, y, mask)`): only the first argument is differentiated, and the
  upstream cotangent of the loss multiplies dscores.

The pair is called exactly as a student's code would be, NumPy or JAX. It is given copies of
everything, so a backward that writes into its upstream gradient (`dnext_c += ...`) or its
cache is checked correctly and noted. `wired` is the pair wired into a `jax.custom_vjp` (what
in-context and second-order checks differentiate), built over the flat leaves so that arrays
inside a parameter dict are never closed over.
"""
from __future__ import annotations

import functools
import inspect

import jax
import numpy as np

from jaxnets.gradcheck import tree
from jaxnets.gradcheck.subject import Subject, grads_to_leaves


class PairError(ValueError):
    """A pair that does not follow the convention (a one-line message)."""


def _positional(fn):
    try:
        return [p for p in inspect.signature(fn).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return None


def arg_names(fn, n=None):
    params = _positional(fn) or []
    names = [p.name for p in params]
    if n is not None:
        names = names[:n] + [f"input{k}" for k in range(len(names), n)]
    return tuple(names)


def n_outputs(backward):
    """How many outputs a backward takes upstream gradients for: its positional parameters
    before the cache (the first named `*cache*`, else the last); 1 when the signature does
    not say."""
    params = _positional(backward)
    if not params or len(params) < 2:
        return 1
    at = [i for i, p in enumerate(params) if "cache" in p.name.lower() and i > 0]
    return at[0] if at else len(params) - 1


def backward_call(forward, backward, args, kwargs):
    """(n_out, options): how many upstream gradients the backward takes, and the values of
    its parameters after the cache, which are the forward's arguments of the same name
    (deeplearning.ai's `linear_activation_backward(dA, cache, activation)`, `pool_backward(dA,
    cache, mode)`); PairError when one it needs is not the forward's."""
    n_out = n_outputs(backward)
    after = (_positional(backward) or [])[n_out + 1:]
    if not after:
        return n_out, {}
    try:
        bound = inspect.signature(forward).bind(*args, **kwargs)
        bound.apply_defaults()
        given = dict(bound.arguments)
    except (TypeError, ValueError):
        given = dict(kwargs)
    options = {}
    for p in after:
        if p.name in given:
            options[p.name] = given[p.name]
        elif p.default is p.empty:
            raise PairError(f"{getattr(backward, '__name__', 'backward')} takes {p.name!r} after its cache, and "
                            f"{getattr(forward, '__name__', 'the forward')} has no argument of that name to take it "
                            f"from")
    return n_out, options


def dict_gradients(grads, args, wrt, names, who="the backward"):
    """A gradients dict keyed `d<argument>` or, for a parameter dict, `d<key>` (deeplearning.ai's
    `{"dxt": ..., "da_prev": ..., "dWax": ...}`) as one gradient per differentiated argument;
    a parameter the dict does not name gets None (zero: `Wya` does not reach `a_next`)."""
    out = []
    for i in wrt:
        name = names[i] if i < len(names) else f"arg{i}"
        if isinstance(args[i], dict):
            out.append({k: grads.get("d" + k) for k in args[i]})
        elif "d" + name in grads:
            out.append(grads["d" + name])
        else:
            from jaxnets.gradcheck.subject import RuleError

            raise RuleError(f"{who} returned a dict without {'d' + name!r} (its keys: {', '.join(map(str, grads))})")
    return tuple(out)


def _batch_mean(backward, positions):
    """The backward with the gradients at `positions` multiplied by m, the last axis of the
    upstream gradient: how a course that returns the batch mean (1/m) of dW and db is
    compared with the derivative of the per-example loss."""
    @functools.wraps(backward)  # its signature stays the user's (the options after the cache are read from it)
    def scaled(*a, **k):
        grads = backward(*a, **k)
        if not isinstance(grads, (tuple, list)):
            return grads
        m = np.shape(a[0])[-1] if np.ndim(a[0]) else 1
        return type(grads)(g * m if i in positions and g is not None else g for i, g in enumerate(grads))

    return scaled


def output_names(backward, n):
    params = _positional(backward) or []
    names = [p.name[1:] if p.name.startswith("d") and len(p.name) > 1 else p.name for p in params[:n]]
    if len(names) != n or len(set(names)) != n:
        return ()
    return ("out",) if n == 1 else tuple(names)


def pair_subject(forward, backward=None, name=None, copies=True, batch_mean=(), batch_mean_names=()):
    """A Subject from a cs231n pair (backward given) or a loss (backward None). batch_mean:
    positions of the gradients the backward returns as the batch mean (`Known.batch_mean`)."""
    if not callable(forward):
        raise PairError(f"forward is not callable: {type(forward).__name__}")
    if backward is not None and not callable(backward):
        raise PairError(f"backward is not callable: {type(backward).__name__}")
    name = name or getattr(backward or forward, "__name__", "layer")
    if backward is None:
        return _loss_subject(forward, name, copies)
    n_out = n_outputs(backward)
    bwd_name = getattr(backward, "__name__", "backward")
    numpy_backward = numpy_code(backward)
    if batch_mean:
        backward = _batch_mean(backward, tuple(batch_mean))
    names = arg_names(forward)
    dropped = []

    def call_backward(douts, cache, args, kwargs, wrt):
        _, options = backward_call(forward, backward, args, kwargs)
        grads = backward(*douts, cache, **options)
        if isinstance(grads, dict):
            grads = dict_gradients(grads, args, wrt, names, bwd_name)
        return grads

    def split_result(result):
        if isinstance(result, (tuple, list)) and len(result) > n_out + 1:
            # outputs the backward takes no gradient for (deeplearning.ai's yt_pred): not differentiated
            if not dropped:
                dropped.append(len(result) - n_out - 1)
                subject.notes.setdefault("outputs", f"{getattr(forward, '__name__', 'forward')} returns "
                                                    f"{len(result) - 1} outputs and {bwd_name} takes gradients "
                                                    f"for the first {n_out}: the others are not differentiated")
            result = (*result[:n_out], result[-1])
        if not isinstance(result, (tuple, list)) or len(result) != n_out + 1:
            size = f" of {len(result)}" if isinstance(result, (tuple, list)) else ""
            want = ", ".join([f"out{k}" for k in range(n_out)] if n_out > 1 else ["out"])
            raise PairError(f"{getattr(forward, '__name__', 'forward')} must return ({want}, cache) for "
                            f"{bwd_name}; got {type(result).__name__}{size}")
        outs = tuple(result[:n_out])
        return (outs[0] if n_out == 1 else outs), result[n_out]

    def primal(*args, **kwargs):
        return split_result(forward(*args, **kwargs))[0]

    def rule(args, kwargs, cot):
        outs, cache = split_result(forward(*args, **kwargs))
        douts = (cot,) if n_out == 1 else tuple(cot)
        if copies and not _traced(cache, douts):
            before, douts, kept = tree.fresh(cache), tree.fresh(douts), douts
            grads = call_backward(douts, cache, args, kwargs, subject.wrt_for(args))
            moved = tree.changed(before, cache)
            if moved or tree.changed(kept, douts):
                what = "its cache" if moved else "its upstream gradient"
                subject.notes.setdefault("in place", f"{bwd_name} modifies {what} in place; it was given a copy, "
                                                     f"so the check is unaffected (in a network, the caller's array "
                                                     f"would change)")
        else:
            grads = call_backward(douts, cache, args, kwargs, subject.wrt_for(args))
        return outs, grads

    subject = Subject(name, "pair", primal, rule, arg_names=arg_names(forward),
                      output_names=output_names(backward, n_out), copies=copies, primal_key=("pair", forward, n_out),
                      code_key=("pair", forward, backward, n_out, copies, tuple(batch_mean), tuple(batch_mean_names)))
    if batch_mean_names:
        subject.notes["convention"] = (f"{', '.join(batch_mean_names)}: the course's batch-mean convention (1/m, m = "
                                       f"the batch size): compared as m * {', m * '.join(batch_mean_names)}")
    if numpy_backward:
        # JAX may trace NumPy code by accident (np functions on tracers); its jit, vmap and
        # in-context behaviour is then not the user's concern (np.random runs once per trace)
        subject.jax_rule = False
        subject.notes["transforms"] = "NumPy code: JAX's jit, vmap and in-context use are not checked"
    subject.wired = _wired(subject, forward, n_out, split_result, call_backward)
    return subject


def numpy_code(fn):
    """Whether fn's module uses no JAX at all (a cs231n NumPy file)."""
    import types

    glob = getattr(fn, "__globals__", {})
    jax_names = ("jax", "jaxlib", "jaxnets")

    def from_jax(v):
        if isinstance(v, types.ModuleType):
            return v.__name__.split(".")[0] in jax_names
        return str(getattr(v, "__module__", None) or "").split(".")[0] in jax_names

    return not any(from_jax(v) for v in glob.values())


def _traced(*trees):
    """Whether any leaf is a JAX tracer or array (in-place writes are only possible, and
    comparable, on NumPy arrays)."""
    return any(isinstance(x, jax.Array) for x in jax.tree_util.tree_leaves(trees))


def _loss_subject(forward, name, copies):
    def result(args, kwargs):
        r = forward(*args, **kwargs)
        if not isinstance(r, (tuple, list)) or len(r) != 2:
            raise PairError(f"{getattr(forward, '__name__', 'loss')} must return (loss, dscores) (or give a backward "
                            f"for a layer)")
        return r

    def primal(*args, **kwargs):
        return result(args, kwargs)[0]

    def rule(args, kwargs, cot):
        loss, dscores = result(args, kwargs)
        return loss, (cot * dscores,)

    subject = Subject(name, "loss", primal, rule, wrt=(0,), arg_names=arg_names(forward), output_names=("loss",),
                      rule_label="dscores", copies=copies, primal_key=("loss", forward),
                      code_key=("loss", forward, copies))
    subject.wired = _wired_loss(result)
    return subject


def _wired(subject, forward, n_out, split_result, call_backward):
    """The pair as a jax.custom_vjp of the differentiated leaves (everything else closed
    over as static or passed as a non-differentiated operand)."""

    def wired(*args, **kwargs):
        wrt = subject.wrt_for(args)
        sp, diff, arrays = tree.split(args, kwargs, wrt, subject.arg_names)

        @jax.custom_vjp
        def f(diff, arrays):
            a, k = tree.join(sp, diff, arrays)
            return split_result(forward(*a, **k))[0]

        statics = {}  # the cache's Python values (a dropout_param, a shape): constants of the trace

        def f_fwd(diff, arrays):
            a, k = tree.join(sp, diff, arrays)
            outs, cache = split_result(forward(*a, **k))
            leaves, statics["treedef"] = jax.tree_util.tree_flatten(cache)
            statics["values"] = [None if tree.is_array(v) else v for v in leaves]
            return outs, ([v for v in leaves if tree.is_array(v)], diff, arrays)

        def f_bwd(res, g):
            cache_arrays, diff, arrays = res
            it = iter(cache_arrays)
            cache = jax.tree_util.tree_unflatten(statics["treedef"],
                                                 [next(it) if v is None else v for v in statics["values"]])
            a, k = tree.join(sp, diff, arrays)
            grads = call_backward((g,) if n_out == 1 else tuple(g), cache, a, k, wrt)
            return grads_to_leaves(grads, a, wrt, sp.names, subject.name), None

        f.defvjp(f_fwd, f_bwd)
        return f(diff, arrays)

    return wired


def _wired_loss(result):
    def wired(*args, **kwargs):
        @jax.custom_vjp
        def f(v, rest):
            return result((v, *rest), kwargs)[0]

        def f_fwd(v, rest):
            loss, dscores = result((v, *rest), kwargs)
            return loss, dscores

        def f_bwd(dscores, g):
            return g * dscores, None

        f.defvjp(f_fwd, f_bwd)
        return f(args[0], tuple(args[1:]))

    return wired


def split_example(forward, items):
    """(args, kwargs) from an example tuple: a trailing dict is keyword values when its keys
    are the forward's parameter names (`{"slope": 0.1}`) or fill no positional slot, else a
    positional argument (cs231n's `bn_param`, `conv_param`)."""
    items = list(items)
    if not items or not isinstance(items[-1], dict):
        return tuple(items), {}
    d = items[-1]
    try:
        params = inspect.signature(forward).parameters.values()
    except (TypeError, ValueError):
        return tuple(items[:-1]), dict(d)
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    n_positional = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
    var_positional = any(p.kind == p.VAR_POSITIONAL for p in params)
    if d and set(d) <= names:
        return tuple(items[:-1]), dict(d)
    if len(items) > n_positional and not var_positional:
        return tuple(items[:-1]), dict(d)
    return tuple(items), {}


def as_numeric(v, where):
    """An example argument with its array leaves as NumPy arrays (float64, integer or bool,
    PRNG keys as they are); containers, dicts, strings and Python numbers stay as they are."""
    return jax.tree_util.tree_map(lambda leaf: _leaf(leaf, where), v)


def _leaf(v, where):
    if isinstance(v, (str, bool, int, float)) or v is None:
        return v
    if tree.is_key(v):
        return v  # a PRNG key (typed, or a legacy key's uint32 bits): passed through untouched
    try:
        a = np.asarray(v)
    except Exception as exc:
        raise PairError(f"{where} is not an array ({type(exc).__name__})") from None
    if a.dtype == bool:
        return a
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise PairError(f"{where} contains NaN or inf")
        return a.astype(np.float64)
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.int64)
    if a.dtype == object:
        return v  # not numeric: held fixed as it is (a function, a model, ...)
    raise PairError(f"{where} must be a numeric array, got dtype {a.dtype}")
