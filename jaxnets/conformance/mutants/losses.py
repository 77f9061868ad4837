"""Planted mistakes in the losses' `(value, grad)` functions: the documents' errata (the wrong
m, the softmax without its max subtracted), the 1/N and the L2 gradient's factor, the binary
cross-entropies' sign and denominator, the SVM hinge over the correct class; and one in the
custom_vjp wiring of a loss, a backward that ignores its incoming cotangent."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnets.conformance.mutants.mutant import Mutant
from jaxnets.ops.losses import softmax_loss


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


def svm_loss_counting_the_correct_class(scores, y):
    n, c = scores.shape
    onehot = jax.nn.one_hot(y, c, dtype=scores.dtype)
    margins = scores - jnp.sum(scores * onehot, axis=1, keepdims=True) + 1
    active = margins > 0  # j == y_i included: its margin is always 1
    loss = jnp.sum(jnp.where(active, margins, 0)) / n
    ind = active.astype(scores.dtype)
    return loss, (ind - onehot * jnp.sum(ind, axis=1, keepdims=True)) / n


PLANTED = (
    Mutant("wrong_m_41_over_42", "softmax_loss", softmax_loss_wrong_m,
           "dscores divided by N * 42/41 (m_original instead of the training rows)", True),
    Mutant("unstable_softmax", "softmax_loss", softmax_loss_unstable,
           "softmax as exp(Z) / sum(exp(Z)) without subtracting the row max", True),
    Mutant("softmax_missing_1_over_n", "softmax_loss", softmax_loss_missing_1_over_n,
           "dscores = p - onehot without the 1/N of the mean loss"),
    Mutant("l2_gradient_half_reg_w", "l2_penalty", l2_penalty_half_gradient,
           "L2 gradient 0.5 * reg * W instead of reg * W"),
    Mutant("bce_with_logits_sign_error", "bce_with_logits", bce_with_logits_sign_error,
           "dZ = (y - sigmoid(z)) / N, sign flipped"),
    Mutant("bce_missing_denominator", "bce", bce_missing_denominator,
           "dL/dp = (p - y) / N, the p (1 - p) denominator dropped"),
    Mutant("loss_vjp_ignores_cotangent", "softmax_loss", softmax_loss,
           "the loss's custom_vjp backward returns dscores, not g * dscores (g = 1 only at the root)",
           wiring=loss_vjp_ignoring_cotangent),
    Mutant("svm_counts_the_correct_class", "svm_loss", svm_loss_counting_the_correct_class,
           "the hinge summed over every class, the correct one included (+1 per row)"),
)
