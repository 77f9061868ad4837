"""Losses with their gradients: softmax cross-entropy (001-003), the multiclass SVM (hinge)
loss (cs231n), binary cross-entropy (000), and the L2 weight penalty (002). Each returns `(value, gradient)` like cs231n's `softmax_loss`.

All losses are means over the N samples, so the returned gradient already carries the 1/N
(the documents' `1/m`).
"""
import jax
import jax.numpy as jnp

from jaxnets.ops.vjp import loss_vjp


def _check_labels(scores, y, name="softmax_loss"):
    if scores.ndim != 2:
        raise ValueError(f"{name}: scores must be (N, C), got shape {scores.shape}")
    if y.shape != (scores.shape[0],):
        raise ValueError(f"{name}: labels must be ({scores.shape[0]},), got shape {y.shape}")
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"{name}: labels must be integers 0..C-1, got dtype {y.dtype}")


def softmax_loss(scores, y):
    """Mean cross-entropy of softmax(scores) against integer labels; returns `(loss, dscores)`.

    scores (N, C), y (N,) ints in 0..C-1 (checked where data enters, since values cannot be
    checked under jit). Stable: the row maximum is subtracted before exp (001/003's softmax
    without it overflows — erratum).
    001: dZ2 = A2 - onehot(Y), averaged by 1/m  ->  dscores = (softmax(scores) - onehot(y)) / N.
    """
    _check_labels(scores, y)
    n, c = scores.shape
    # The result does not depend on the shift; stop_gradient keeps autodiff from routing
    # a (mathematically zero) gradient through the max.
    shifted = scores - jax.lax.stop_gradient(jnp.max(scores, axis=1, keepdims=True))
    log_probs = shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=1, keepdims=True))
    onehot = jax.nn.one_hot(y, c, dtype=scores.dtype)
    loss = -jnp.sum(log_probs * onehot) / n
    dscores = (jnp.exp(log_probs) - onehot) / n
    return loss, dscores


def svm_loss(scores, y):
    """Multiclass SVM (hinge) loss, margin 1, mean over the N rows; returns `(loss, dscores)`.

    cs231n assignment 1 (svm_loss_vectorized): margins m_ij = s_ij - s_iy_i + 1 for j != y_i,
    loss = (1/N) sum_i sum_{j != y_i} max(0, m_ij);
    dscores_ij = 1[m_ij > 0] / N for j != y_i, dscores_iy_i = -(number of j with m_ij > 0) / N.
    Subgradient convention: a margin of exactly 0 is inactive (its hinge contributes 0 to the
    gradient), as in cs231n's `margins > 0`; the forward is written with where(m > 0, m, 0)
    so jax.grad follows it too (jnp.maximum would split the tie and give 1/2). The correct
    class never counts against itself: its own margin is always exactly 1, so counting it
    (the classic slip) adds exactly 1 to the loss while the gradient stays the same (+1/N as
    a "j" and -1/N through the count cancel) — only a check of the loss value catches it.
    """
    _check_labels(scores, y, "svm_loss")
    n, c = scores.shape
    onehot = jax.nn.one_hot(y, c, dtype=scores.dtype)
    correct = jnp.sum(scores * onehot, axis=1, keepdims=True)
    margins = scores - correct + 1
    active = (margins > 0) & (onehot == 0)
    loss = jnp.sum(jnp.where(active, margins, 0)) / n
    ind = active.astype(scores.dtype)
    dscores = (ind - onehot * jnp.sum(ind, axis=1, keepdims=True)) / n
    return loss, dscores


def _check_binary(name, v, y):
    if v.shape != y.shape:
        raise ValueError(f"{name}: predictions {v.shape} and targets {y.shape} differ in shape")
    if v.size == 0:
        raise ValueError(f"{name}: empty batch")


def binary_cross_entropy_with_logits(z, y):
    """Mean BCE of sigmoid(z) against 0/1 targets y, from logits z; returns `(loss, dz)`.

    Stable form softplus(z) - y z, softplus = logaddexp(0, z) (no overflow at either end).
    000: dZ2 = A2 - Y (sigmoid and BCE together), averaged by 1/m  ->  dz = (sigmoid(z) - y) / N.
    (Written as max(z, 0) + log1p(exp(-|z|)) instead, the value is the same but jax.grad of it
    is wrong at z = 0 exactly: the kinks of max and |.| cancel in the function, not in the
    subgradients autodiff picks there. `jaxnets gradcheck --public-api` found that.)
    """
    _check_binary("binary_cross_entropy_with_logits", z, y)
    n = z.size
    loss = jnp.sum(jnp.logaddexp(0.0, z) - y * z) / n
    # sigmoid(z) from e = exp(-|z|): 1 / (1 + e) for z >= 0, e / (1 + e) below (no overflow)
    e = jnp.exp(-jnp.abs(z))
    dz = (jnp.where(z >= 0, 1, e) / (1 + e) - y) / n
    return loss, dz


def binary_cross_entropy(p, y):
    """Mean BCE of probabilities p in (0, 1) against 0/1 targets y; returns `(loss, dp)`.

    000: cost = -(1/m) sum(Y log A2 + (1 - Y) log(1 - A2)), written with log1p for p near 0/1.
    dL/dp = (p - y) / (p (1 - p)) / N. p must lie strictly inside (0, 1); prefer the logits form.
    """
    _check_binary("binary_cross_entropy", p, y)
    n = p.size
    loss = -jnp.sum(y * jnp.log(p) + (1 - y) * jnp.log1p(-p)) / n
    dp = (p - y) / (p * (1 - p)) / n
    return loss, dp


def l2_penalty(w, reg):
    """002's weight decay: `(0.5 * reg * sum(w**2), reg * w)`.

    The 0.5 makes the gradient exactly reg * w (not 0.5 * reg * w, nor 2 * reg * w).
    """
    return 0.5 * reg * jnp.sum(w * w), reg * w


__all__ = ["softmax_loss", "svm_loss", "binary_cross_entropy_with_logits", "binary_cross_entropy", "l2_penalty"]

softmax_cross_entropy = loss_vjp(softmax_loss)
hinge = loss_vjp(svm_loss)
bce_with_logits = loss_vjp(binary_cross_entropy_with_logits)
bce = loss_vjp(binary_cross_entropy)
l2 = loss_vjp(l2_penalty)

# Losses: the pair returns (value, gradient); autodiff differentiates its value.
LAYERS = {
    "softmax_loss": (softmax_loss, softmax_cross_entropy),
    "svm_loss": (svm_loss, hinge),
    "bce_with_logits": (binary_cross_entropy_with_logits, bce_with_logits),
    "bce": (binary_cross_entropy, bce),
    "l2_penalty": (l2_penalty, l2),
}
