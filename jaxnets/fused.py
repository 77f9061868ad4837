"""Fast paths for training the documents' networks on one device.

Each is a "manual"-mode gradient (the hand-written backward functions chained in reverse) laid
out for speed, and each is checked against `jaxnets.grads.value_and_grad` in all three modes
and against NumPy float64 by tests/test_fused.py with the equivalence suite's tolerances.

- `mlp_one_pass_value_and_grad`: full-batch gradient of the two-layer ReLU MLPs (001/003's
  digits net, 002's TwoLayerNet) reading X once. The rows are visited in chunks; each chunk
  runs forward and backward while it is in cache and adds its share to dW, so one iteration
  streams X from memory once instead of twice (forward, then dW1 = X^T dZ1). dW1 is
  accumulated as (H, D) = dZ1^T X, the product layout XLA:CPU computes ~2x faster for a
  narrow hidden layer.
- `conv_net_value_and_grad`: the ConvNet (conv stride 1 - ReLU - P x P max pool of stride
  P - affine) with conv, ReLU and pool as one layer, `conv_relu_pool_forward/backward`. The
  convolution is computed only where a pool window reads it, directly in "pool phase" layout:
  conv output (P a + p, P b + q) is phase p*P + q of pool cell (a, b). All phases read the
  same (P+HH-1)(P+WW-1) strided slices of the input, so the layer is ONE matrix product
  (F*P*P, C*(P+HH-1)*(P+WW-1)) @ (.., Hp*Wp*N) with examples and positions on one axis, the
  pool is a max over the phase axis and its backward a select (no scatter), and the pooled
  output is already laid out (F*Hp*Wp, N) for the affine layer that follows. Computed as the
  three separate ops instead, XLA:CPU recomputes or re-reads (N, F, H, W) arrays through
  strided 2x2 windows several times (~2x slower; see README "Performance").
- `decode_pixels`: the training data can stay uint8 on the device (4x less memory traffic
  and device memory); every chunk or minibatch is decoded to floats inside the computation.
- `fused_steps`: many optimiser steps in one jitted `lax.scan`, minibatch indices drawn on
  the device (the same draws as `jaxnets.train`), parameters and optimiser state donated.

Each fast path applies where its layout fits and raises ValueError otherwise; `fast_value_and_grad`
picks one for a model or falls back to the plain manual mode. Backend choices (the chunk size)
only change speed, never the result beyond float rounding.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxnets.grads import value_and_grad
from jaxnets.models.base import add_l2_penalty
from jaxnets.ops import (
    affine_backward,
    affine_forward,
    relu_backward,
    relu_forward,
    softmax_loss,
)
from jaxnets.ops._windows import output_size

__all__ = [
    "CPU_CHUNK", "decode_pixels", "mlp_one_pass_value_and_grad", "conv_relu_pool_forward",
    "conv_relu_pool_backward", "conv_net_value_and_grad", "fast_value_and_grad", "fused_steps",
]

#: rows per chunk of the one-pass MLP gradient on CPU (measured best of 500-13667 for m = 41000,
#: 784 pixels): the decoded chunk (~6 MB) stays in L3 between its forward and its dW product.
CPU_CHUNK = 2048
MLP_MODELS = ("digits", "two_layer")


def _on_cpu():
    return jax.default_backend() == "cpu"


def _is_default(value, default):
    return isinstance(value, (int, float)) and value == default


def decode_pixels(x, shift=0.0, scale=1.0, dtype=jnp.float32):
    """`(x - shift) / scale` in `dtype`: stored pixels (uint8, or already floats) to the
    training inputs. shift is a scalar or an array broadcasting against x (002's mean image);
    `decode_pixels(u8, 0, 255)` is `data.preprocess.scale_pixels(u8)` to within one float32
    rounding (XLA may divide by multiplying with the reciprocal)."""
    x = x.astype(dtype)
    if not _is_default(shift, 0.0):
        x = x - jnp.asarray(shift, dtype)
    if not _is_default(scale, 1.0):
        x = x / jnp.asarray(scale, dtype)
    return x


def _add(a, b):
    return jax.tree.map(jnp.add, a, b)


# ---------------------------------------------------------------------------------------------
# Two-layer MLP, one pass over X


def _check_mlp(model):
    if model.name not in MLP_MODELS:
        raise ValueError(f"one-pass MLP gradient: model {model.name!r} is not one of {MLP_MODELS}")


def mlp_one_pass_value_and_grad(model, chunk=None, shift=0.0, scale=1.0):
    """`(params, x, y) -> (loss, grads)` for a two-layer MLP (`digits_mlp`, `two_layer_net`),
    equal up to float rounding to `value_and_grad(model, mode)(params, decode_pixels(x, shift,
    scale), y)`, reading each row of x once.

    x: (N, D) stored pixels (uint8 or float), y: (N,) int labels. chunk: rows per chunk;
    None = CPU_CHUNK on CPU and all rows at once elsewhere (GPUs and TPUs stream X fast
    enough that chunking only adds loop steps). The last chunk may be shorter.
    Per chunk of n_c rows, the mean loss and its gradient are weighted by n_c / N, so the sum
    over chunks is 001's (1/m) sum over all m rows.
    """
    _check_mlp(model)
    reg = model.config.get("reg", 0.0) or 0.0

    def chunk_terms(params, xc, yc, n_total):
        xc = decode_pixels(xc.reshape(xc.shape[0], -1), shift, scale, params["W1"].dtype)
        weight = xc.shape[0] / n_total
        z1, c1 = affine_forward(xc, params["W1"], params["b1"])
        a1, c2 = relu_forward(z1)
        z2, c3 = affine_forward(a1, params["W2"], params["b2"])
        loss, dz2 = softmax_loss(z2, yc)
        da1, dW2, db2 = affine_backward(dz2 * weight, c3)
        dz1 = relu_backward(da1, c2)
        # 001: dW1 = (1/m) dZ1 X^T, here (H, D) per chunk (the 1/m is in dz2); transposed once
        # at the end. b1 as in affine_backward: summed over rows only.
        dW1_t = lax.dot_general(dz1, xc, (((0,), (0,)), ((), ())))
        return loss * weight, (dW1_t, jnp.sum(dz1, axis=0), dW2, db2)

    def value_and_grad_fn(params, x, y):
        n = x.shape[0]
        if y.shape != (n,):
            raise ValueError(f"one-pass MLP gradient: y must have shape ({n},), got {y.shape}")
        size = chunk if chunk is not None else (CPU_CHUNK if _on_cpu() else n)
        size = max(1, min(int(size), n))
        n_full = n // size
        total = jax.eval_shape(lambda: chunk_terms(params, x[:size], y[:size], n))
        total = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), total)
        if n_full == 1:
            total = chunk_terms(params, x[:size], y[:size], n)
        elif n_full > 1:
            def body(i, acc):
                xc = lax.dynamic_slice_in_dim(x, i * size, size)
                yc = lax.dynamic_slice_in_dim(y, i * size, size)
                return _add(acc, chunk_terms(params, xc, yc, n))

            total = lax.fori_loop(0, n_full, body, total)
        if n_full * size < n:
            total = _add(total, chunk_terms(params, x[n_full * size:], y[n_full * size:], n))
        loss, (dW1_t, db1, dW2, db2) = total
        return add_l2_penalty(loss, {"W1": dW1_t.T, "b1": db1, "W2": dW2, "b2": db2}, params, reg)

    return value_and_grad_fn


# ---------------------------------------------------------------------------------------------
# Conv - ReLU - max pool as one layer, in pool-phase layout


@partial(jax.tree_util.register_dataclass, data_fields=["w", "slices", "z", "first"],
         meta_fields=["x_shape", "pad", "pool"])
@dataclass(frozen=True)
class ConvReluPoolCache:
    """What conv_relu_pool_backward needs (arrays examples-last, see `_phase_slices`); a
    pytree whose geometry is static, so it passes through jit like the ops' caches.

    w (F, C, HH, WW) filters; slices (C*rows*cols, Hp*Wp*N) strided input slices;
    z (F, P*P, Hp*Wp*N) conv outputs (pre-ReLU), one row per pool phase;
    first (F, Hp*Wp*N) int32, the phase of each window's first maximum.
    """

    w: jax.Array
    slices: jax.Array
    z: jax.Array
    first: jax.Array
    x_shape: tuple
    pad: int
    pool: int


def _phase_geometry(x, w, b, pad, pool):
    if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1] or b.shape != (w.shape[0],):
        raise ValueError(f"conv_relu_pool: need x (N, C, H, W), w (F, C, HH, WW), b (F,); got "
                         f"{x.shape}, {w.shape}, {b.shape}")
    if pad < 0 or pool < 1:
        raise ValueError(f"conv_relu_pool: need pad >= 0 and pool >= 1, got pad={pad}, pool={pool}")
    hc = output_size(x.shape[2] + 2 * pad, w.shape[2], 1, "conv_relu_pool (height)")
    wc = output_size(x.shape[3] + 2 * pad, w.shape[3], 1, "conv_relu_pool (width)")
    hp = output_size(hc, pool, pool, "conv_relu_pool pool (height)")
    wp = output_size(wc, pool, pool, "conv_relu_pool pool (width)")
    return hp, wp


def _grid(start, pool, size):
    return slice(start, start + pool * (size - 1) + 1, pool)


def _phase_slices(x, pad, pool, rows, cols, hp, wp):
    """(C*rows*cols, Hp*Wp*N): row (c, r, s) holds xpad[n, c, r + pool*a, s + pool*b] over the
    pool grid (a, b) and the examples n (examples last), for r < rows = pool + HH - 1 and
    s < cols = pool + WW - 1. With examples and positions on one axis the convolution is a
    single matrix product, and the pooled output comes out as (F*Hp*Wp, N): the layout the
    following affine layer multiplies without a transpose."""
    xt = jnp.transpose(x, (1, 2, 3, 0))  # (C, H, W, N)
    xt = jnp.pad(xt, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    taps = [xt[:, _grid(r, pool, hp), _grid(s, pool, wp), :] for r in range(rows) for s in range(cols)]
    return jnp.stack(taps, axis=1).reshape(x.shape[1] * rows * cols, hp * wp * x.shape[0])


def _phase_filters(w, pool):
    """(F*P*P, C*rows*cols): row (f, p, q) holds w[f] placed at offset (p, q) in a zero
    (C, rows, cols) window, so that row times the phase slices is conv output (P a + p, P b + q)."""
    f, c, hh, ww = w.shape
    rows, cols = pool + hh - 1, pool + ww - 1
    placed = [
        jnp.pad(w, ((0, 0), (0, 0), (p, rows - hh - p), (q, cols - ww - q)))
        for p in range(pool)
        for q in range(pool)
    ]
    return jnp.stack(placed, axis=1).reshape(f * pool * pool, c * rows * cols)


def _conv_relu_pool_forward_t(x, w, b, pad, pool):
    """conv_relu_pool_forward with the output examples-last: (F*Hp*Wp, N)."""
    hp, wp = _phase_geometry(x, w, b, pad, pool)
    n, f = x.shape[0], w.shape[0]
    rows, cols = pool + w.shape[2] - 1, pool + w.shape[3] - 1
    slices = _phase_slices(x, pad, pool, rows, cols, hp, wp)
    z = (_phase_filters(w, pool) @ slices).reshape(f, pool * pool, hp * wp * n) + b[:, None, None]
    best = z[:, 0]
    first = jnp.zeros(best.shape, jnp.int32)
    for k in range(1, pool * pool):
        later = z[:, k] > best  # a tie keeps the earlier phase: the first maximum, row-major
        best = jnp.where(later, z[:, k], best)
        first = jnp.where(later, jnp.int32(k), first)
    out, _ = relu_forward(best)
    cache = ConvReluPoolCache(w, slices, z, first, tuple(x.shape), pad, pool)
    return out.reshape(f * hp * wp, n), cache


def _conv_relu_pool_backward_t(dout_t, cache):
    """conv_relu_pool_backward taking dout examples-last, (F*Hp*Wp, N)."""
    w, slices, z, first = cache.w, cache.slices, cache.z, cache.first
    pad, pool = cache.pad, cache.pool
    n, c, h, wd = cache.x_shape
    f, pp, ln = z.shape
    hh, ww = w.shape[2], w.shape[3]
    rows, cols = pool + hh - 1, pool + ww - 1
    hp = (h + 2 * pad - hh + 1) // pool
    wp = (wd + 2 * pad - ww + 1) // pool
    d = dout_t.reshape(f, 1, ln)
    phase = lax.broadcasted_iota(jnp.int32, (1, pp, 1), 1)
    da = jnp.where(phase == first[:, None, :], d, jnp.zeros((), d.dtype))
    dz = relu_backward(da, z).reshape(f * pp, ln)
    dwph = lax.dot_general(dz, slices, (((1,), (1,)), ((), ()))).reshape(f, pool, pool, c, rows, cols)
    dw = sum(dwph[:, p, q, :, p : p + hh, q : q + ww] for p in range(pool) for q in range(pool))
    db = jnp.sum(dz.reshape(f, pp * ln), axis=1)
    dslices = lax.dot_general(_phase_filters(w, pool), dz, (((0,), (0,)), ((), ())))
    dslices = dslices.reshape(c, rows, cols, hp, wp, n)
    hpad, wpad = h + 2 * pad, wd + 2 * pad
    zero = jnp.zeros((), d.dtype)
    dxp = jnp.zeros((c, hpad, wpad, n), d.dtype)
    for r in range(rows):
        for s in range(cols):
            dxp = dxp + lax.pad(dslices[:, r, s], zero, [
                (0, 0, 0),
                (r, hpad - r - pool * (hp - 1) - 1, pool - 1),
                (s, wpad - s - pool * (wp - 1) - 1, pool - 1),
                (0, 0, 0),
            ])
    dx = jnp.transpose(dxp[:, pad : pad + h, pad : pad + wd, :], (3, 0, 1, 2))
    return dx, dw, db


def conv_relu_pool_forward(x, w, b, pad=1, pool=2):
    """max_pool(relu(conv(x, w, b, stride=1, pad)), pool, pool, pool) as one layer.

    Returns `(out (N, F, Hp, Wp), cache)`, equal to the three ops chained (conv_forward,
    relu_forward, max_pool_forward) up to float rounding; conv outputs no pool window reads
    (rows/columns beyond Hp*P) are never computed, as they cannot affect the result.
    ReLU is monotone, so the pool of ReLU outputs is the ReLU of the largest conv output, and
    the window's first maximum of the ReLU outputs is the first maximum of the conv outputs
    whenever the gradient can flow (max > 0; otherwise ReLU' = 0 blocks it anyway).
    """
    out_t, cache = _conv_relu_pool_forward_t(x, w, b, pad, pool)
    f, n = w.shape[0], x.shape[0]
    return jnp.transpose(out_t.reshape(f, -1, n), (2, 0, 1)).reshape(n, f, *_phase_geometry(x, w, b, pad, pool)), cache


def conv_relu_pool_backward(dout, cache):
    """Return `(dx, dw, db)` for conv_relu_pool_forward; dout: (N, F, Hp, Wp).

    000's three backwards in pool-phase layout:
    max pool: dA[phase] = dout at the first phase (row-major) holding the window's maximum;
    ReLU:     dZ = dA * (Z > 0)  (ReLU'(0) = 0);
    conv:     dw[f, c, i, j] = sum_{n, a, b, phase (p, q)} dZ[f, (p, q), (a, b, n)]
              xpad[n, c, P a + p + i, P b + q + j]  — the phase-filter gradient folded back;
              db = sum of dZ; dx = every phase slice's share sent back to where it was read.
    """
    n, f = dout.shape[0], dout.shape[1]
    return _conv_relu_pool_backward_t(jnp.transpose(dout.reshape(n, f, -1), (1, 2, 0)).reshape(-1, n), cache)


def conv_net_value_and_grad(model, shift=0.0, scale=1.0):
    """`(params, x, y) -> (loss, grads)` for `conv_net` models with conv stride 1, through
    conv_relu_pool; equal up to float rounding to value_and_grad(model, mode) on
    decode_pixels(x, shift, scale). x: (N, C, H, W) stored pixels, y: (N,) int labels.

    The pooled activations stay examples-last, P (F*Hp*Wp, N), so the affine layer is 002's
    affine pair transposed: scores = P^T W2 + b2, dW2 = P dscores, dP = W2 dscores^T.
    """
    if model.name != "conv":
        raise ValueError(f"conv_net_value_and_grad: model {model.name!r} is not a conv_net")
    cfg = model.config
    if cfg["stride"] != 1:
        raise ValueError(f"conv_net_value_and_grad: needs conv stride 1, model has {cfg['stride']}")
    pad, pool, reg = cfg["pad"], cfg["pool"], cfg.get("reg", 0.0) or 0.0

    def value_and_grad_fn(params, x, y):
        x = decode_pixels(x, shift, scale, params["W1"].dtype)
        p1, c1 = _conv_relu_pool_forward_t(x, params["W1"], params["b1"], pad, pool)
        if params["W2"].shape[0] != p1.shape[0]:
            raise ValueError(f"conv_net_value_and_grad: W2 has {params['W2'].shape[0]} rows, the "
                             f"pooled activations have {p1.shape[0]} features")
        scores = lax.dot_general(p1, params["W2"], (((0,), (0,)), ((), ()))) + params["b2"]
        loss, dscores = softmax_loss(scores, y)
        dW2 = p1 @ dscores
        db2 = jnp.sum(dscores, axis=0)
        dp1 = params["W2"] @ dscores.T
        _, dW1, db1 = _conv_relu_pool_backward_t(dp1, c1)
        return add_l2_penalty(loss, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}, params, reg)

    return value_and_grad_fn


# ---------------------------------------------------------------------------------------------
# Choosing a fast path, and many steps per jit call


def fast_value_and_grad(model, shift=0.0, scale=1.0, full_batch=False):
    """The fastest gradient here for `model` on stored pixels: the one-pass MLP gradient for
    full-batch MLP training, conv_relu_pool for a stride-1 ConvNet, otherwise the manual mode
    on decoded inputs. Same signature and result as `value_and_grad(model, "manual")`."""
    if model.name in MLP_MODELS and full_batch:
        return mlp_one_pass_value_and_grad(model, shift=shift, scale=scale)
    if model.name == "conv" and model.config["stride"] == 1:
        return conv_net_value_and_grad(model, shift=shift, scale=scale)
    manual = value_and_grad(model, "manual")

    def value_and_grad_fn(params, x, y):
        return manual(params, decode_pixels(x, shift, scale, params["W1"].dtype), y)

    return value_and_grad_fn


def fused_steps(grad_fn, optimizer: optax.GradientTransformation, steps, batch_size=None):
    """A jitted `(params, opt_state, x, y, key, step0) -> (params, opt_state, losses[steps])`
    that applies `steps` optimiser updates in one `lax.scan`; params and opt_state are donated
    (the caller's arrays are consumed).

    batch_size None: every step uses all rows (full-batch gradient descent); otherwise step t
    uses `batch_size` rows drawn with replacement by `jax.random.randint(fold_in(key, t), ...)`,
    the same draws as `jaxnets.train.sample_batch_indices`, gathered on the device (x may be
    uint8: grad_fn decodes). losses[i] is the loss before update step0 + i, on its batch.
    Unlike `jaxnets.train.train` there is no divergence check and no history: this is the
    bare loop, for benchmarks and callers that do their own bookkeeping.
    """

    def run(params, opt_state, x, y, key, step0):
        ts = step0 + jnp.arange(steps)
        if batch_size is None:
            rows = ts
        else:
            # All steps' draws at once, before the loop: the same numbers as one randint per
            # step, without a PRNG call (two small while loops on CPU) inside every step.
            rows = jax.vmap(lambda t: jax.random.randint(jax.random.fold_in(key, t), (batch_size,), 0, x.shape[0]))(ts)

        def one_step(carry, idx):
            params, opt_state = carry
            if batch_size is None:
                xb, yb = x, y
            else:
                xb, yb = jnp.take(x, idx, axis=0), jnp.take(y, idx, axis=0)
            loss, grads = grad_fn(params, xb, yb)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = lax.scan(one_step, (params, opt_state), rows)
        return params, opt_state, losses

    return jax.jit(run, donate_argnums=(0, 1))
