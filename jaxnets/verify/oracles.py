"""The gradient sources of `check_layer`, run on one LayerCase in float64.

- "backward": the pair's own gradients, `backward(dout, cache)` (jitted when JAX can trace it,
  else called on NumPy arrays);
- "autodiff": `jax.vjp` of the forward with the same dout (JAX-traceable forwards);
- "custom_vjp" vs "autodiff" in context: the backward wired in as a `jax.custom_vjp` and
  differentiated by `jax.grad` inside a composition — each input reached through its own
  exact map (a permutation and signed powers of two, so kinks and ties stay exactly where the
  case put them) and the output fed to a random downstream function sum(r1 out + r2 out^2 / 2),
  whose cotangent r1 + r2 out is neither random noise nor 1 (for a loss: a random scalar);
  compared with jax.vjp of the forward under that cotangent (the composition's chain rule);
- finite differences of the forward (`fd_values`), for `finite_diff.probe`.

JAX functions are jitted once per (pair, keyword values) and reused across calls,
so checking many backwards of one forward (the mutant catalogue) compiles the forward's
autodiff and finite differences once.
"""
from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp

from jaxnets.verify.finite_diff import PROBE_OFFSETS, output_bounds

#: finite-difference requests per jitted call (padded), so one shape compiles once
FD_CHUNK = 32
#: directions per input a finite-difference call takes (padded with zeros)
FD_DIRECTIONS = 2
_MEMO = {}
_MEMO_SIZE = 256


def _freeze(v):
    if isinstance(v, np.ndarray):
        return ("array", v.shape, str(v.dtype), v.tobytes())
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    hash(v)
    return v


def _memo(key, build):
    """build() cached under key (None: not cached); a small LRU."""
    try:
        key = _freeze(key)
    except TypeError:
        return build()
    if key in _MEMO:
        _MEMO[key] = _MEMO.pop(key)
        return _MEMO[key]
    value = _MEMO[key] = build()
    if len(_MEMO) > _MEMO_SIZE:
        _MEMO.pop(next(iter(_MEMO)))
    return value


def _place(arrays, wrt, diff):
    full = list(arrays)
    for k, a in zip(wrt, diff):
        full[k] = a
    return tuple(full)


def wired(layer, static):
    """The pair as a jax.custom_vjp function of all positional arrays: its derivative is the
    pair's backward (a loss: cotangent * dloss); inputs not differentiated get None."""
    @jax.custom_vjp
    def f(*arrays):
        return layer.forward(*arrays, **static)[0]

    def f_fwd(*arrays):
        return layer.forward(*arrays, **static)

    def f_bwd(cache, g):
        full = [None] * len(layer.input_names)
        for k, grad in zip(layer.wrt, layer.gradients(g, cache)):
            full[k] = grad
        return tuple(full)

    f.defvjp(f_fwd, f_bwd)
    return f


class Oracles:
    """One pair's oracles for the cases of one example (its keyword values)."""

    def __init__(self, layer, static):
        self.layer, self.static = layer, static
        self._key = (layer.forward, layer.backward, layer.form, layer.wrt, static)
        self._forward_key = (layer.forward, layer.form, layer.wrt, static)

    # --------------------------------------------------------------------- direct

    def _vjp(self, arrays, dout):
        layer, static = self.layer, self.static
        value = lambda *diff: layer.forward(*_place(arrays, layer.wrt, diff), **static)[0]  # noqa: E731
        out, pullback = jax.vjp(value, *(arrays[k] for k in layer.wrt))
        return out, tuple(pullback(jnp.asarray(dout, out.dtype)))

    def _own(self, arrays, dout):
        out, cache = self.layer.forward(*arrays, **self.static)
        return out, self.layer.gradients(dout, cache)

    def direct(self, case):
        """{"backward": (out, grads), "autodiff": (out, grads)} as NumPy, or the Exception
        raised; autodiff only for a JAX-traceable forward. Separate jitted functions, so a
        new backward of the same forward (a mutant) compiles only its own."""
        layer = self.layer
        arrays, dout = case.arrays, case.dout
        if layer.jax_backward:
            own = _memo(("backward",) + self._key, lambda: jax.jit(self._own))
            results = {"backward": _call(lambda: own(arrays, dout))}
        else:
            results = {"backward": _call(lambda: self._own(arrays, dout))}
        if layer.jax_forward:
            results["autodiff"] = self.autodiff(arrays, dout)
        return results

    def autodiff(self, arrays, dout):
        """jax.vjp of the forward at `arrays` with cotangent `dout`: (out, grads) or the
        Exception raised."""
        auto = _memo(("autodiff",) + self._forward_key, lambda: jax.jit(self._vjp))
        return _call(lambda: auto(arrays, dout))

    def eager(self, case):
        """The backward's gradients without jit (JAX arrays, op by op)."""
        arrays = tuple(jnp.asarray(a) for a in case.arrays)
        return _call(lambda: self._own(arrays, jnp.asarray(case.dout)))

    def per_example(self, case):
        """Gradients from jax.vmap over examples of the pair on one-row batches, summed over
        the examples for inputs without the batch axis; (out rows, grads)."""
        layer, static = self.layer, self.static
        batched = layer.batched

        def one(rows, others, drow):
            arrays = list(others)
            for k, r in zip(batched, rows):
                arrays[k] = r[None]
            out, cache = layer.forward(*arrays, **static)
            return out[0], layer.gradients(drow[None], cache)

        def run(arrays, dout):
            rows = tuple(arrays[k] for k in batched)
            others = tuple(None if k in batched else a for k, a in enumerate(arrays))
            out, grads = jax.vmap(one, in_axes=(0, None, 0))(rows, others, dout)
            return out, tuple(g[:, 0] if k in batched else g.sum(axis=0) for k, g in zip(layer.wrt, grads))

        fn = _memo(("vmap",) + self._key, lambda: jax.jit(run))
        return _call(lambda: fn(case.arrays, case.dout))

    # --------------------------------------------------------------------- in context

    def context(self, case, rng):
        """The backward as a jax.custom_vjp under jax.grad in context: each input's gradient,
        mapped back through its exact map, and (r1, r2): the layer saw the upstream gradient
        r1 + r2 * out, so jax.vjp of the forward with that cotangent (`autodiff`) is what it
        must equal (the composition's own chain rule, without a second compilation).
        (None, None) when JAX cannot trace the pair."""
        layer = self.layer
        if not layer.jax_backward:
            return None, None
        maps = []
        for k in layer.wrt:
            size = case.arrays[k].size
            perm = rng.permutation(size)
            scale = rng.choice([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0], size)
            t = np.empty(size)
            t[perm] = case.arrays[k].ravel() / scale
            maps.append((t, perm, scale))
        ts, perms, scales = (tuple(m[i] for m in maps) for i in range(3))
        out_shape = np.shape(case.dout)
        r1, r2 = rng.standard_normal(out_shape), 0.5 * rng.standard_normal(out_shape)
        fn = _memo(("context",) + self._key, lambda: self._in_context(wired(layer, self.static)))
        return _call(lambda: _np_grads(fn(ts, case.arrays, perms, scales, r1, r2))), (r1, r2)

    def _in_context(self, fn):
        """jit of: the gradients of sum(r1 out + r2 out^2 / 2), out = fn(inputs through their
        maps), with respect to the inputs, mapped back (see `context`)."""
        layer = self.layer

        def g(ts, arrays, perms, scales, r1, r2):
            arrays = list(arrays)
            for i, k in enumerate(layer.wrt):
                arrays[k] = (scales[i] * ts[i][perms[i]]).reshape(arrays[k].shape)
            out = fn(*arrays)
            return jnp.sum(r1 * out + 0.5 * r2 * out * out)

        def grads(ts, arrays, perms, scales, r1, r2):
            dts = jax.grad(g)(ts, arrays, perms, scales, r1, r2)
            return tuple((dt[p] / s).reshape(arrays[k].shape)
                         for dt, p, s, k in zip(dts, perms, scales, layer.wrt))

        return jax.jit(grads)

    # --------------------------------------------------------------------- finite differences

    def fd_values(self, case, dout, requests):
        """phi = sum(forward(...)[0] * dout) at x + PROBE_OFFSETS * h along each request
        (i, flat index or None, direction or None, h) of input wrt[i]: ((len, 7) values,
        (len, 5) `output_bounds`, magnitude bound of phi for the noise floor)."""
        if self.layer.jax_forward:
            try:
                return self._fd_jax(case, dout, requests)
            except Exception:  # a forward JAX traces but cannot vmap: evaluate it point by point
                pass
        return self._fd_numpy(case, dout, requests)

    def _out(self, arrays):
        return self.layer.forward(*arrays, **self.static)[0]

    def _fd_jax(self, case, dout, requests):
        layer = self.layer
        dirs = []
        for i, k in enumerate(layer.wrt):
            given = [r[2] for r in requests if r[0] == i and r[2] is not None]
            if len(given) > FD_DIRECTIONS:
                raise ValueError(f"at most {FD_DIRECTIONS} directions per input")
            dirs.append(np.stack(given + [np.zeros(case.arrays[k].shape)] * (FD_DIRECTIONS - len(given))))
        dirs = tuple(dirs)
        fn = _memo(("fd",) + self._forward_key, lambda: jax.jit(self._fd_chunk))
        which, idx, d_id, steps = [], [], [], []
        counters = [0] * len(layer.wrt)
        for i, flat, direction, h in requests:
            which.append(i)
            idx.append(-1 if flat is None else flat)
            d_id.append(-1 if direction is None else counters[i])
            counters[i] += direction is not None
            steps.append(h)
        values, bounds, mags = [], [], []
        for start in range(0, len(requests), FD_CHUNK):
            sl = slice(start, start + FD_CHUNK)
            pad = FD_CHUNK - len(which[sl])
            chunk = [np.asarray(v[sl] + [v[sl][-1]] * pad) for v in (which, idx, d_id, steps)]
            vals, bnds, mag = jax.device_get(fn(case.arrays, dout, dirs, *chunk))
            values.append(np.asarray(vals)[: FD_CHUNK - pad])
            bounds.append(np.asarray(bnds)[: FD_CHUNK - pad])
            mags.append(float(mag))
        return np.concatenate(values), np.concatenate(bounds), max(mags)

    def _fd_chunk(self, arrays, dout, dirs, which, idx, d_id, steps):
        """phi along FD_CHUNK requests at the PROBE_OFFSETS, all vmapped: each request moves
        input wrt[which] along a unit vector (d_id < 0) or its d_id-th direction; the other
        inputs get a zero step, so one traced forward serves every input."""
        layer = self.layer
        offsets = jnp.asarray(PROBE_OFFSETS)

        def at(w, i_, d_, t):
            moved = list(arrays)
            for i, k in enumerate(layer.wrt):
                x = arrays[k]
                unit = (jnp.arange(x.size) == i_).reshape(x.shape).astype(x.dtype)
                direction = jnp.where(d_ < 0, unit, dirs[i][jnp.maximum(d_, 0)])
                moved[k] = x + jnp.where(w == i, t, 0.0) * direction
            return self._out(tuple(moved))

        def one(w, i_, d_, h):
            outs = jax.vmap(lambda t: at(w, i_, d_, t))(offsets * h)
            phi = jnp.sum((outs * dout).reshape(len(PROBE_OFFSETS), -1), axis=1)
            return phi, output_bounds(outs, dout, h)

        values, bounds = jax.vmap(one)(which, idx, d_id, steps)
        base = jnp.sum(jnp.abs(self._out(arrays) * dout))
        return values, bounds, jnp.maximum(base, jnp.max(jnp.abs(values)))

    def _fd_numpy(self, case, dout, requests):
        layer = self.layer
        arrays = [np.array(a) for a in case.arrays]

        def out(a):
            return np.asarray(layer.forward(*a, **self.static)[0], dtype=np.float64)

        mag = float(np.sum(np.abs(out(arrays) * dout)))
        values = np.empty((len(requests), len(PROBE_OFFSETS)))
        bounds = np.empty((len(requests), 5))
        for r, (i, flat, direction, h) in enumerate(requests):
            k = layer.wrt[i]
            x = case.arrays[k]
            outs = []
            for off in PROBE_OFFSETS:
                if direction is None:
                    pert = x.copy().ravel()
                    pert[flat] += off * h
                    pert = pert.reshape(x.shape)
                else:
                    pert = x + off * h * direction
                arrays[k] = pert
                outs.append(out(arrays))
            arrays[k] = x
            outs = np.stack(outs)
            values[r] = np.sum((outs * dout).reshape(len(PROBE_OFFSETS), -1), axis=1)
            bounds[r] = output_bounds(outs, dout, h)
        return values, bounds, max(mag, float(np.max(np.abs(values))) if values.size else 0.0)


def _np(pair):
    out, grads = pair
    return np.asarray(out, dtype=np.float64), tuple(np.asarray(g, dtype=np.float64) for g in grads)


def _np_grads(grads):
    return tuple(np.asarray(g, dtype=np.float64) for g in grads)


def _call(fn):
    """fn() converted to NumPy, or the Exception it raised (a broken layer is a failed check)."""
    try:
        result = jax.device_get(fn())
    except Exception as exc:
        return exc
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], tuple):
        return _np(result)
    return result
