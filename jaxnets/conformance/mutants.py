"""Planted bugs: is the equivalence checker strong enough to notice a wrong gradient?

Each mutant is a modified copy of one correct JAX function from `jaxnets.ops` — a layer's
hand-written backward, or a loss's `(value, grad)` function — with one plausible mistake:
the gradient errata of SPEC.md (`erratum=True`) and the classic slips of hand-written
backprop. `run_mutants` plugs each into `jaxnets.gradcheck.compare_op` (the checker the test
suite uses) as the implementation of the manual and custom_vjp modes, over the
deterministic cases of `mutant_cases`; the mutant is caught when any comparison fails.
The same cases must pass with the correct functions (`baseline_results`), otherwise the
score would mean nothing.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxnets.ops.losses import softmax_loss
from jaxnets.ops.windows import tap, untap
from jaxnets.conformance import mutants_cs231n, mutants_sequence
from jaxnets.conformance.suite import compare_op, make_op_case
from jaxnets.conformance.op_specs import geometry_pool


class Mutant(NamedTuple):
    name: str
    op: str  # the jaxnets.conformance.OPS entry it replaces the implementation of
    fn: Callable  # a backward(dout, cache) for layers, a (value, grad) function for losses
    description: str
    erratum: bool = False  # planted from SPEC.md's Errata table
    #: a replacement for jaxnets.ops.vjp's custom_vjp wiring (manual_vjp / loss_vjp), for a
    #: mistake in the wiring rather than in `fn` (then `fn` is the correct function)
    wiring: Callable | None = None


class MutantResult(NamedTuple):
    name: str
    caught: bool
    detail: str  # the first failing comparison (or why it was not caught)


# ----------------------------------------------------------------------------- dense

def affine_backward_bias_summed_over_all_axes(dout, cache):
    x, w = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = jnp.full((dout.shape[1],), jnp.sum(dout))  # 001/003: np.sum(dZ), every bias the same
    return dx, dw, db


def affine_backward_transposed_dw(dout, cache):
    x, w = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = dout.T @ x.reshape(x.shape[0], -1)  # (M, D): the column-layout dW = dZ X^T kept as is
    db = jnp.sum(dout, axis=0)
    return dx, dw, db


# ----------------------------------------------------------------------------- activations

def relu_backward_without_mask(dout, cache):
    return dout  # 002's relu_backward


def relu_backward_grad_one_at_zero(dout, cache):
    x = cache
    return jnp.where(x >= 0, dout, jnp.zeros_like(dout))  # ReLU'(0) = 1


def tanh_backward_from_preactivation(dout, cache):
    out = cache
    x = jnp.arctanh(out)
    return dout * (1 - x * x)  # 1 - Z1^2 instead of 1 - A1^2


def sigmoid_backward_missing_one_minus(dout, cache):
    out = cache
    return dout * out  # sigma' = sigma (1 - sigma) with the (1 - sigma) forgotten


# ----------------------------------------------------------------------------- conv

def _conv_backward(dout, cache, *, flip=False, stride_delta=0, strip=True, db_mean=False):
    """conv_backward (jaxnets.ops.conv) with switchable mistakes."""
    x, w, stride, pad = cache.x, cache.w, cache.stride, cache.pad
    n, c, h, wd = x.shape
    hh, ww = w.shape[2], w.shape[3]
    ho, wo = dout.shape[2], dout.shape[3]
    xp = jnp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    hp, wp = h + 2 * pad, wd + 2 * pad
    dxp = jnp.zeros(xp.shape, dout.dtype)
    dw_taps = []
    for i in range(hh):
        for j in range(ww):
            dw_taps.append(jnp.einsum("nfhw,nchw->fc", dout, tap(xp, i, j, stride, ho, wo)))
            wi, wj = (hh - 1 - i, ww - 1 - j) if flip else (i, j)
            dxp = dxp + untap(jnp.einsum("nfhw,fc->nchw", dout, w[:, :, wi, wj]), i, j, stride + stride_delta, hp, wp)
    dw = jnp.stack(dw_taps, axis=-1).reshape(w.shape)
    db = jnp.sum(dout, axis=(0, 2, 3))
    if db_mean:
        db = db / (ho * wo)
    dx = dxp[:, :, pad : pad + h, pad : pad + wd] if strip else dxp
    return dx, dw, db


def conv_backward_unflipped_kernel(dout, cache):
    return _conv_backward(dout, cache, flip=True)  # tap (i, j) pairs with w[HH-1-i, WW-1-j]


def conv_backward_stride_off_by_one(dout, cache):
    return _conv_backward(dout, cache, stride_delta=1)  # dx scattered with stride + 1


def conv_backward_padding_not_stripped(dout, cache):
    return _conv_backward(dout, cache, strip=False)  # dx keeps the padded (H + 2p, W + 2p) shape


def conv_backward_bias_averaged_over_positions(dout, cache):
    return _conv_backward(dout, cache, db_mean=True)  # db_c = mean instead of sum over (h, w)


# ----------------------------------------------------------------------------- pooling

def _max_pool_backward(dout, cache, *, order=1, first_only=True):
    x, out = cache.x, cache.out
    ph, pw, s = cache.pool_height, cache.pool_width, cache.stride
    ho, wo = out.shape[2], out.shape[3]
    h, w = x.shape[2], x.shape[3]
    claimed = jnp.zeros(out.shape, bool)
    dx = jnp.zeros(x.shape, dout.dtype)
    for i, j in [(i, j) for i in range(ph) for j in range(pw)][::order]:
        hit = tap(x, i, j, s, ho, wo) == out
        if first_only:
            hit = hit & ~claimed
            claimed = claimed | hit
        dx = dx + untap(jnp.where(hit, dout, 0), i, j, s, h, w)
    return dx


def max_pool_backward_all_tied_maxima(dout, cache):
    return _max_pool_backward(dout, cache, first_only=False)  # 000's mask x == max(x)


def max_pool_backward_last_maximum(dout, cache):
    return _max_pool_backward(dout, cache, order=-1)  # the last maximum in row-major order


def _avg_pool_backward(dout, cache, *, divide=True, stride_delta=0):
    x = cache.x
    ph, pw, s = cache.pool_height, cache.pool_width, cache.stride
    share = dout / (ph * pw) if divide else dout
    dx = jnp.zeros(x.shape, dout.dtype)
    for i in range(ph):
        for j in range(pw):
            dx = dx + untap(share, i, j, s + stride_delta, x.shape[2], x.shape[3])
    return dx


def avg_pool_backward_not_divided(dout, cache):
    return _avg_pool_backward(dout, cache, divide=False)  # dZ spread without / (f * f)


def avg_pool_backward_stride_off_by_one(dout, cache):
    return _avg_pool_backward(dout, cache, stride_delta=1)


# ----------------------------------------------------------------------------- losses

def _softmax_parts(scores, y):
    n, c = scores.shape
    shifted = scores - jax.lax.stop_gradient(jnp.max(scores, axis=1, keepdims=True))
    log_probs = shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=1, keepdims=True))
    onehot = jax.nn.one_hot(y, c, dtype=scores.dtype)
    return n, log_probs, onehot


def softmax_loss_wrong_m(scores, y):
    n, log_probs, onehot = _softmax_parts(scores, y)
    m = n * 42.0 / 41.0  # 003: divides by m_original (42000 rows), not the 41000 trained on
    return -jnp.sum(log_probs * onehot) / n, (jnp.exp(log_probs) - onehot) / m


def softmax_loss_unstable(scores, y):
    n, c = scores.shape
    e = jnp.exp(scores)  # 001/003: exp(Z) / sum(exp(Z)) without subtracting the max
    probs = e / jnp.sum(e, axis=1, keepdims=True)
    onehot = jax.nn.one_hot(y, c, dtype=scores.dtype)
    return -jnp.sum(jnp.log(probs) * onehot) / n, (probs - onehot) / n


def softmax_loss_missing_1_over_n(scores, y):
    n, log_probs, onehot = _softmax_parts(scores, y)
    return -jnp.sum(log_probs * onehot) / n, jnp.exp(log_probs) - onehot  # sum, not mean


def bce_with_logits_sign_error(z, y):
    n = z.size
    loss = jnp.sum(jnp.logaddexp(0.0, z) - y * z) / n
    return loss, (y - jax.nn.sigmoid(z)) / n  # dZ2 = Y - A2


def bce_missing_denominator(p, y):
    n = p.size
    loss = -jnp.sum(y * jnp.log(p) + (1 - y) * jnp.log1p(-p)) / n
    return loss, (p - y) / n  # the sigmoid's dZ2 = A2 - Y used for dL/dA2


def l2_penalty_half_gradient(w, reg):
    return 0.5 * reg * jnp.sum(w * w), 0.5 * reg * w  # d(0.5 reg w^2)/dw taken as 0.5 reg w


def loss_vjp_ignoring_cotangent(pair):
    """jaxnets.ops.vjp.loss_vjp whose backward returns dvalue, not g * dvalue: right as the
    root of jax.grad (g = 1), 3x off in jax.grad(lambda s: 3 * loss(s, y))."""

    @jax.custom_vjp
    def f(v, target):
        return pair(v, target)[0]

    def f_fwd(v, target):
        return pair(v, target)

    def f_bwd(dv, g):
        return (dv, None)  # the incoming cotangent g is dropped

    f.defvjp(f_fwd, f_bwd)
    return f


MUTANTS = (
    Mutant("bias_summed_over_all_axes", "affine", affine_backward_bias_summed_over_all_axes,
           "db = sum(dZ) over units and samples: one value for the whole bias vector", True),
    Mutant("wrong_m_41_over_42", "softmax_loss", softmax_loss_wrong_m,
           "dscores divided by N * 42/41 (m_original instead of the training rows)", True),
    Mutant("relu_backward_without_mask", "relu", relu_backward_without_mask,
           "relu_backward returns dout, no (x > 0) mask", True),
    Mutant("unstable_softmax", "softmax_loss", softmax_loss_unstable,
           "softmax as exp(Z) / sum(exp(Z)) without subtracting the row max", True),
    Mutant("conv_dx_unflipped_kernel", "conv", conv_backward_unflipped_kernel,
           "dx's full convolution pairs tap (i, j) with the flipped tap (HH-1-i, WW-1-j)"),
    Mutant("conv_dx_stride_off_by_one", "conv", conv_backward_stride_off_by_one,
           "dx scattered back with stride + 1"),
    Mutant("conv_dx_padding_not_stripped", "conv", conv_backward_padding_not_stripped,
           "dx returned with the zero padding still on"),
    Mutant("conv_db_averaged_over_positions", "conv", conv_backward_bias_averaged_over_positions,
           "db = mean over output positions instead of the sum"),
    Mutant("max_pool_grad_to_all_tied_maxima", "max_pool", max_pool_backward_all_tied_maxima,
           "every tied maximum of a window gets the full gradient (000's x == max(x) mask)"),
    Mutant("max_pool_grad_to_last_maximum", "max_pool", max_pool_backward_last_maximum,
           "ties resolved to the last maximum in row-major order"),
    Mutant("avg_pool_not_divided_by_window", "avg_pool", avg_pool_backward_not_divided,
           "dZ spread over the window without dividing by ph * pw"),
    Mutant("avg_pool_stride_off_by_one", "avg_pool", avg_pool_backward_stride_off_by_one,
           "window gradients scattered with stride + 1"),
    Mutant("softmax_missing_1_over_n", "softmax_loss", softmax_loss_missing_1_over_n,
           "dscores = p - onehot without the 1/N of the mean loss"),
    Mutant("l2_gradient_half_reg_w", "l2_penalty", l2_penalty_half_gradient,
           "L2 gradient 0.5 * reg * W instead of reg * W"),
    Mutant("tanh_grad_from_preactivation", "tanh", tanh_backward_from_preactivation,
           "tanh' as 1 - Z^2 (pre-activation) instead of 1 - A^2"),
    Mutant("affine_transposed_dw", "affine", affine_backward_transposed_dw,
           "dW = dZ^T X, the column layout's (M, D) orientation"),
    Mutant("bce_with_logits_sign_error", "bce_with_logits", bce_with_logits_sign_error,
           "dZ = (y - sigmoid(z)) / N, sign flipped"),
    Mutant("relu_grad_one_at_zero", "relu", relu_backward_grad_one_at_zero,
           "mask x >= 0: ReLU'(0) = 1 against the project's ReLU'(0) = 0"),
    Mutant("sigmoid_grad_missing_one_minus", "sigmoid", sigmoid_backward_missing_one_minus,
           "sigmoid' = out instead of out * (1 - out)"),
    Mutant("bce_missing_denominator", "bce", bce_missing_denominator,
           "dL/dp = (p - y) / N, the p (1 - p) denominator dropped"),
    Mutant("loss_vjp_ignores_cotangent", "softmax_loss", softmax_loss,
           "the loss's custom_vjp backward returns dscores, not g * dscores (g = 1 only at the root)",
           wiring=loss_vjp_ignoring_cotangent),
    *(Mutant(*planted) for planted in mutants_cs231n.PLANTED),
    *(Mutant(*planted) for planted in mutants_sequence.PLANTED),
)

#: The errata of SPEC.md that concern gradients; each must have a mutant.
GRADIENT_ERRATA = ("bias_summed_over_all_axes", "wrong_m_41_over_42", "relu_backward_without_mask", "unstable_softmax")

#: Geometries per op the mutants are checked on (the first of each op's pool: its edge cases).
MUTANT_GEOMETRIES = 4
MUTANT_SEEDS = (11, 12)


def mutant_cases(op):
    """The deterministic cases a mutant of `op` is checked on: the edge geometries, each
    with ordinary (kink-free, finite differences on) and stress inputs."""
    return [make_op_case(op, g, seed, stress)
            for g in geometry_pool(op)[:MUTANT_GEOMETRIES]
            for stress in (False, True)
            for seed in MUTANT_SEEDS]


def baseline_results(ops_=None):
    """The correct functions on every mutant case: {op: [CheckResult, ...]}; all must pass."""
    ops_ = ops_ or sorted({m.op for m in MUTANTS})
    return {op: [compare_op(case) for case in mutant_cases(op)] for op in ops_}


def check_mutant(mutant):
    """Run the checker with `mutant` as the implementation until a case fails."""
    for case in mutant_cases(mutant.op):
        result = compare_op(case, impl=mutant.fn, wiring=mutant.wiring)
        if not result.ok:
            worst = max(result.failures, key=lambda c: c.err)
            return MutantResult(mutant.name, True, f"{case.label}: {worst}")
    return MutantResult(mutant.name, False, f"all {len(mutant_cases(mutant.op))} cases pass")


def run_mutants(mutants=MUTANTS):
    """[(name, caught, detail), ...] for every mutant."""
    return [check_mutant(m) for m in mutants]


def score(results):
    caught = sum(r.caught for r in results)
    return f"mutants caught {caught}/{len(results)}"
