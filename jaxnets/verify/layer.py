"""A user's layer as `check_layer` sees it: the pair, its examples, and what probing them says.

Convention (cs231n and this project): `forward(*arrays, **static) -> (out, cache)` and
`backward(dout, cache) -> gradients`, one per floating positional input in their order (a bare
array when there is one). Integer positional inputs (labels) get no gradient; keyword values
are held fixed. A loss written as `forward(scores, *targets) -> (loss, dscores)` (no backward)
is the "loss" form: only its first input is differentiated, and the upstream cotangent of the
loss multiplies dscores.

`prepare_layer` runs the pair on every example once, concretely, and turns anything that makes
the check meaningless (a forward that rejects its own example, a backward with the wrong number
or shapes of gradients, NaN/inf) into one `LayerInputError` line. It also finds out which
oracles can run: JAX tracing of the forward (autodiff) and of the backward (custom_vjp, jit,
vmap); which inputs carry the batch axis (leading sizes) and whether rows are independent.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

import jax
import numpy as np

from jaxnets.verify.hints import shape_hint


class LayerInputError(ValueError):
    """Input that check_layer cannot check; the message is one line saying what is wrong."""


@dataclass(frozen=True)
class Example:
    """One valid call: positional arrays (float64 or int64) and keyword values."""

    arrays: tuple
    static: dict
    index: int = 0

    @property
    def label(self):
        stat = ", ".join(f"{k}={_short(v)}" for k, v in self.static.items())
        shapes = ", ".join("x".join(map(str, a.shape)) or "scalar" for a in self.arrays)
        return f"example {self.index} ({shapes}{'; ' + stat if stat else ''})"


def _short(v):
    return f"array{np.shape(v)}" if isinstance(v, np.ndarray) and np.ndim(v) else repr(v)


def _as_array(a, where):
    arr = np.asarray(a)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise LayerInputError(f"{where} must be a numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise LayerInputError(f"{where} contains NaN or inf")
        return arr.astype(np.float64)
    return arr.astype(np.int64)


def _one_example(ex, index):
    if isinstance(ex, Example):
        return Example(ex.arrays, dict(ex.static), index)
    if isinstance(ex, np.ndarray) or np.isscalar(ex) or hasattr(ex, "__array__"):
        ex = (ex,)
    if not isinstance(ex, (tuple, list)) or not ex:
        raise LayerInputError(f"example {index} must be a tuple of arrays, optionally followed by a dict "
                              f"of keyword values; got {type(ex).__name__}")
    items = list(ex)
    static = {}
    if isinstance(items[-1], dict):
        static = dict(items.pop())
    if not items:
        raise LayerInputError(f"example {index} has no arrays")
    arrays = tuple(_as_array(a, f"example {index}, array {k}") for k, a in enumerate(items))
    return Example(arrays, static, index)


def as_examples(example):
    """[Example] from one example (a tuple of arrays, optionally followed by a dict of
    keyword values) or a list of them (several geometries of the same layer)."""
    if example is None:
        raise LayerInputError("no example given: pass the arrays of one valid call")
    if isinstance(example, list) and example and all(isinstance(e, (tuple, Example)) for e in example):
        exs = [_one_example(e, i) for i, e in enumerate(example)]
    else:
        exs = [_one_example(example, 0)]
    kinds = {tuple(np.issubdtype(a.dtype, np.floating) for a in e.arrays) for e in exs}
    if len(kinds) > 1:
        raise LayerInputError("examples differ in their number or kinds (float/int) of arrays")
    return exs


def as_tuple(grads):
    return tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)


@dataclass
class Layer:
    """A pair under test and the facts `prepare_layer` found out about it."""

    name: str
    forward: Callable
    backward: Callable | None
    form: str  # "layer" or "loss"
    wrt: tuple  # indices of the differentiated positional inputs
    input_names: tuple
    jax_forward: bool = False  # forward traceable by JAX: autodiff runs
    jax_backward: bool = False  # forward and backward traceable: custom_vjp, jit and vmap run
    scalar_out: bool = False
    batched: tuple = ()  # inputs that carry the batch axis (leading sizes vary), () if none
    leading_sizes: tuple = ()  # leading sizes the forward accepts besides the examples'
    rows_independent: bool = False
    notes: dict = field(default_factory=dict)  # oracle or feature -> why it did not run

    def param_name(self, i):
        return self.input_names[self.wrt[i]]

    def gradients(self, dout, cache):
        """The pair's gradients for upstream `dout` (NumPy or JAX), a tuple in wrt order."""
        if self.form == "loss":
            return (dout * cache,)
        return as_tuple(self.backward(dout, cache))


def _names(fn, n):
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        names = [p.name for p in params[:n]]
    except (TypeError, ValueError):
        names = []
    return tuple(names + [f"input{k}" for k in range(len(names), n)])


def _first_line(exc, limit=240):
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


def run_forward(who, forward, ex):
    """(out as float64 NumPy, cache) of `forward` on an example, or LayerInputError."""
    try:
        result = forward(*ex.arrays, **ex.static)
    except Exception as exc:
        raise LayerInputError(f"{who} rejected {ex.label}: {_first_line(exc)}") from None
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        size = f" of {len(result)}" if isinstance(result, (tuple, list)) else ""
        raise LayerInputError(f"{who} must return a pair (out, cache) or (loss, dloss); got "
                              f"{type(result).__name__}{size}")
    out, cache = result
    try:
        out = np.asarray(out, dtype=np.float64)
    except Exception as exc:
        raise LayerInputError(f"{who}: out must be one array, got {type(out).__name__} ({_first_line(exc)})") from None
    if not np.all(np.isfinite(out)):
        raise LayerInputError(f"{who} returned NaN or inf on {ex.label}")
    return out, cache


def check_gradients(who, grads, ex, wrt, names):
    """Gradients as float64 arrays of the inputs' shapes, or LayerInputError."""
    grads = as_tuple(grads)
    if len(grads) != len(wrt):
        expected = ", ".join(names[k] for k in wrt)
        raise LayerInputError(f"{who} returned {len(grads)} gradient(s), expected {len(wrt)} ({expected}: one "
                              f"per floating positional input; integer inputs and keyword values get none)")
    out = []
    for g, k in zip(grads, wrt):
        try:
            g = np.asarray(g, dtype=np.float64)
        except Exception as exc:
            raise LayerInputError(f"{who}: gradient of {names[k]} is not an array ({_first_line(exc)})") from None
        want = ex.arrays[k].shape
        if g.shape != want:
            hint = shape_hint(g.shape, want, ex)
            raise LayerInputError(f"{who} returned d{names[k]} of shape {g.shape}, expected {want}"
                                  + (f" ({hint})" if hint else ""))
        if not np.all(np.isfinite(g)):
            raise LayerInputError(f"{who} returned NaN or inf in d{names[k]} on {ex.label}")
        out.append(g)
    return tuple(out)


def _traces(fn, *args, limit=240):
    """None if JAX can trace fn(*args), else the reason (one line)."""
    try:
        jax.eval_shape(fn, *args)
        return None
    except Exception as exc:
        return _first_line(exc, limit)


def prepare_layer(forward, backward, examples, name=None, rng=None, who="forward", leading_sizes=True):
    """Validate the pair on every example and probe it; returns a Layer (or LayerInputError)."""
    if not callable(forward):
        raise LayerInputError(f"{who} is not callable: {type(forward).__name__}")
    if backward is not None and not callable(backward):
        raise LayerInputError(f"backward is not callable: {type(backward).__name__}")
    rng = rng or np.random.default_rng(0)
    ex0 = examples[0]
    floats = tuple(k for k, a in enumerate(ex0.arrays) if np.issubdtype(a.dtype, np.floating))
    form = "loss" if backward is None else "layer"
    wrt = (0,) if form == "loss" else floats
    if not wrt or wrt[0] not in floats:
        raise LayerInputError("nothing to differentiate: the example has no floating positional input"
                              + (" (a loss differentiates its first input)" if form == "loss" else ""))
    names = _names(forward, len(ex0.arrays))
    layer = Layer(name or getattr(forward, "__name__", "layer").removesuffix("_forward"), forward, backward,
                  form, wrt, names)
    bwd_name = getattr(backward, "__name__", "backward")
    for ex in examples:
        out, cache = run_forward(who, forward, ex)
        if form == "loss":
            if out.size != 1:
                raise LayerInputError(f"without a backward, {who} must return (loss, dloss) with a scalar loss; "
                                      f"got out of shape {out.shape} (pass the backward for a layer)")
            check_gradients(f"{who} (its dloss)", (cache,), ex, wrt, names)
        else:
            dout = rng.standard_normal(out.shape)
            try:
                grads = backward(dout, cache)
            except Exception as exc:
                raise LayerInputError(f"{bwd_name} raised on {ex.label}: {_first_line(exc)}") from None
            check_gradients(bwd_name, grads, ex, wrt, names)
    layer.scalar_out = out.size == 1 and out.ndim == 0
    _probe_jax(layer, ex0)
    _probe_batch(layer, ex0, out, leading_sizes)
    return layer


def _probe_jax(layer, ex):
    static = ex.static
    why = _traces(lambda *a: layer.forward(*a, **static), *ex.arrays, limit=100)
    if why:
        layer.notes["autodiff"] = f"the forward is not JAX-traceable ({why})"
        layer.notes["custom_vjp"] = "needs a JAX-traceable forward"
        return
    layer.jax_forward = True
    if layer.form == "loss":
        layer.jax_backward = True
        return
    out_shape = jax.eval_shape(lambda *a: layer.forward(*a, **static)[0], *ex.arrays)
    dout = np.zeros(out_shape.shape, np.float64)
    why = _traces(lambda arrays, d: layer.backward(d, layer.forward(*arrays, **static)[1]), ex.arrays, dout,
                  limit=100)
    if why:
        layer.notes["custom_vjp"] = f"the backward is not JAX-traceable ({why})"
        layer.notes["transforms"] = "jit and vmap need a JAX-traceable backward"
        return
    layer.jax_backward = True


def _with_leading(ex, batched, n):
    arrays = list(ex.arrays)
    for k in batched:
        a = arrays[k]
        reps = -(-n // a.shape[0])
        arrays[k] = np.concatenate([a] * reps, axis=0)[:n]
    return Example(tuple(arrays), ex.static, ex.index)


def _probe_batch(layer, ex, out, try_sizes=True):
    """Which inputs carry the batch axis, the leading sizes the forward also accepts, and
    whether its output rows depend only on their own input rows (then vmap per example is
    checked)."""
    if not ex.arrays[0].ndim:
        layer.notes["leading sizes"] = "the first input has no leading (batch) axis"
        return
    n = ex.arrays[0].shape[0]
    sizes = tuple(s for s in (1, n + 1) if s != n) if try_sizes else (n,)
    same = tuple(k for k, a in enumerate(ex.arrays) if a.ndim and a.shape[0] == n)
    for batched in dict.fromkeys((same, (0,))):
        try:
            outs = {s: np.asarray(layer.forward(*_with_leading(ex, batched, s).arrays, **ex.static)[0])
                    for s in sizes}
        except Exception as exc:
            reason = _first_line(exc)
            continue
        if all(o.ndim == out.ndim and (not o.ndim or o.shape[0] == s or o.shape == out.shape)
               for s, o in outs.items()):
            layer.batched, layer.leading_sizes = batched, sizes if try_sizes else ()
            break
        reason = "the output's leading size does not follow the input's"
    else:
        layer.notes["leading sizes"] = f"only the examples' leading sizes: the forward rejected N={sizes} ({reason})"
        return
    if not try_sizes:
        layer.notes["leading sizes"] = "not tried (leading_sizes=False)"
    if out.ndim and out.shape[0] == n and n > 1:
        rows = list(ex.arrays)
        for k in layer.batched:
            rows[k] = ex.arrays[k][-1:]
        last = np.asarray(layer.forward(*rows, **ex.static)[0], dtype=np.float64)
        layer.rows_independent = last.shape == out[-1:].shape and np.allclose(last, out[-1:], rtol=1e-9, atol=1e-12)
    if not layer.rows_independent:
        layer.notes["vmap"] = "rows are not independent (a row's output depends on other rows, or N = 1)"
