"""Fully connected (affine) layer, `out = x @ w + b` in the row layout (documents 000-003).

x: (N, d1, ..., dk) is flattened to (N, D) with D = d1*...*dk; w: (D, M); b: (M,); out: (N, M).
"""
import jax.numpy as jnp
from jax import lax

from jaxnets.ops.vjp import manual_vjp


def affine_forward(x, w, b):
    """Return `(out, cache)` with `out = x.reshape(N, D) @ w + b` (002 `affine_forward`)."""
    if x.ndim < 2:
        raise ValueError(f"affine_forward: x must be (N, d1, ...), got shape {x.shape}")
    if w.ndim != 2 or b.shape != (w.shape[1],):
        raise ValueError(f"affine_forward: need w (D, M) and b (M,), got {w.shape} and {b.shape}")
    x2 = x.reshape(x.shape[0], -1)
    if x2.shape[1] != w.shape[0]:
        raise ValueError(
            f"affine_forward: x has {x2.shape[1]} features per sample (shape {x.shape}) "
            f"but w expects {w.shape[0]} (shape {w.shape})"
        )
    return x2 @ w + b, (x, w)


def affine_backward(dout, cache):
    """Return `(dx, dw, db)` for `out = x @ w + b`.

    000/001: dW = (1/m) dZ A_prev^T, db = (1/m) sum(dZ, axis=1), dA_prev = W^T dZ  (column
    layout). In the row layout the 1/m already sits in dout (the loss gradient), so
    dw = x.T @ dout, db = sum(dout, axis=0) (summed over samples only — document 001/003's
    `np.sum(dZ)` over all axes is an erratum), dx = dout @ w.T reshaped to x's shape (002).
    """
    x, w = cache
    x2 = x.reshape(x.shape[0], -1)
    dx = (dout @ w.T).reshape(x.shape)
    dw = weight_gradient(x2, dout)
    db = jnp.sum(dout, axis=0)
    return dx, dw, db


#: inputs at least this wide take the transposed weight-gradient product on CPU.
WIDE_INPUT = 64


def weight_gradient(x2, dout):
    """`x2.T @ dout` (D, M) for x2 (N, D) and dout (N, M), summed over the N rows.

    XLA:CPU computes this product in (D, M) output layout up to 2-3x slower than the same
    product as (M, D) (a 784 x 10 dW1 from 41000 rows: ~37 ms vs ~19 ms; 002's 784 x 200 from
    200 rows: a few % of a training step), and folds a plain transpose straight back into the
    slow form; the optimization barrier keeps the (M, D) product, and the transpose of the
    result costs little (D*M values against the product's N*D*M multiply-adds). One form on
    every backend: GPU and TPU matrix units take either orientation at the same speed, so the
    transpose is all the barrier costs there. Narrow inputs (D < WIDE_INPUT, e.g. 000's 5
    features) gain nothing and would pay the transpose; they take the plain product.

    The fast orientation is the one with the narrower output rows: when the gradient is wider
    than the input (M > D: an LSTM's dWh, 128 x 512 from 1792 rows, 2.4 ms plain vs 4.5 ms
    transposed on one core; a transformer MLP's 128 -> 512 layer, 2.7 vs 5.2 ms), the (M, D)
    form is the slow one and the plain product is taken. Square gradients measured the same
    either way (128 x 128 from 2048 rows: 0.80 vs 0.82 ms) and keep the barrier.
    """
    if x2.shape[1] < WIDE_INPUT or dout.shape[1] > x2.shape[1]:
        return x2.T @ dout
    return lax.optimization_barrier(lax.dot_general(dout, x2, (((0,), (0,)), ((), ())))).T


__all__ = ["affine_forward", "affine_backward", "weight_gradient", "WIDE_INPUT"]

affine = manual_vjp(affine_forward, affine_backward)

#: name in `jaxnets.ops.Layers` -> (the pair autodiff differentiates, the custom_vjp function)
LAYERS = {"affine": (affine_forward, affine)}
