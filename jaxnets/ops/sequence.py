"""The sequence layers around cs231n assignment 3's RNNs: word embeddings, the temporal affine
layer (one affine map applied at every time step) and the temporal softmax loss, with
cs231n's names, signatures and return orders.

Word indices and targets are integers and the loss mask is boolean; neither gets a gradient.
Index values cannot be checked under jit: an index outside 0..V-1 embeds as a row of NaNs
(never a silently clamped row), and its gradient is dropped.
"""
import jax
import jax.numpy as jnp

from jaxnets.ops.dense import weight_gradient
from jaxnets.ops.vjp import loss_vjp, manual_vjp

__all__ = [
    "word_embedding_forward", "word_embedding_backward",
    "temporal_affine_forward", "temporal_affine_backward",
    "last_step_forward", "last_step_backward", "positional_embedding_forward", "positional_embedding_backward",
    "temporal_softmax_loss",
]


def _check_integers(name, what, a):
    if not jnp.issubdtype(a.dtype, jnp.integer):
        raise ValueError(f"{name}: {what} must be integers, got dtype {a.dtype}")


# ----------------------------------------------------------------------------- word embedding

def word_embedding_forward(x, W):
    """out = W[x]: the word vectors of the indices x (N, T) from W (V, D), out (N, T, D).
    Returns `(out, cache)`."""
    _check_integers("word_embedding_forward", "x (word indices)", x)
    if W.ndim != 2:
        raise ValueError(f"word_embedding_forward: W must be (V, D), got shape {W.shape}")
    out = jnp.asarray(W).at[x].get(mode="fill", fill_value=jnp.nan, wrap_negative_indices=False)
    return out, (x, W)


def word_embedding_backward(dout, cache):
    """Return dW (V, D) for word_embedding_forward (x gets no gradient: it is an index).

    cs231n assignment 3 (word_embedding_backward, "np.add.at"): out[n, t] = W[x[n, t]], so
    dW[v] = sum over all (n, t) with x[n, t] = v of dout[n, t]. A word that occurs several
    times gets the SUM of its positions' gradients (a scatter-add, never an assignment, which
    would keep only one of them).
    """
    x, W = cache
    return jnp.zeros_like(W).at[jnp.asarray(x)].add(dout, mode="drop", wrap_negative_indices=False)


# ----------------------------------------------------------------------------- temporal affine

def _check_affine(x, w, b):
    if x.ndim != 3:
        raise ValueError(f"temporal_affine_forward: x must be (N, T, D), got shape {x.shape}")
    if w.ndim != 2 or w.shape[0] != x.shape[2]:
        raise ValueError(f"temporal_affine_forward: w must be ({x.shape[2]}, M) for D = {x.shape[2]}, got {w.shape}")
    if b.shape != (w.shape[1],):
        raise ValueError(f"temporal_affine_forward: b must be ({w.shape[1]},), got {b.shape}")


def temporal_affine_forward(x, w, b):
    """out[:, t] = x[:, t] w + b at every time step: x (N, T, D), w (D, M), b (M,) -> (N, T, M).
    Returns `(out, cache)`."""
    _check_affine(x, w, b)
    return x @ w + b, (x, w)


def temporal_affine_backward(dout, cache):
    """Return `(dx, dw, db)` for temporal_affine_forward.

    cs231n assignment 3 (temporal_affine_backward): affine_backward on the N*T rows,
    dx = dout w^T, dw = sum_{n,t} x[n, t]^T dout[n, t], db = sum_{n,t} dout[n, t].
    """
    x, w = cache
    rows = x.shape[0] * x.shape[1]
    dout2 = dout.reshape(rows, -1)
    return dout @ w.T, weight_gradient(x.reshape(rows, -1), dout2), jnp.sum(dout2, axis=0)


# ----------------------------------------------------------------------------- positional embedding

def positional_embedding_forward(x, W):
    """out[:, t] = x[:, t] + W[t]: learned positions added to x (N, T, D), W (P, D) with
    P >= T (a sequence shorter than P takes the first T rows). Returns `(out, cache)`."""
    if x.ndim != 3 or W.ndim != 2 or W.shape[1] != x.shape[2] or W.shape[0] < x.shape[1]:
        raise ValueError(f"positional_embedding_forward: need x (N, T, D) and W (P >= T, D); got {x.shape} and {W.shape}")
    return x + W[:x.shape[1]], W  # the cache is W (a custom_vjp residual must be an array)


def positional_embedding_backward(dout, cache):
    """Return `(dx, dW)` for positional_embedding_forward.

    out[n, t] = x[n, t] + W[t], so dx = dout and dW[t] = sum over the N sequences of
    dout[n, t] (every sequence adds its gradient to the same row); rows t >= T get 0.
    """
    return dout, jnp.zeros_like(cache).at[:dout.shape[1]].set(jnp.sum(dout, axis=0))


# ----------------------------------------------------------------------------- last step

def last_step_forward(h):
    """out = h[:, -1]: the last time step of h (N, T, H), out (N, H) (a sequence classifier's
    summary of the sequence). Returns `(out, cache)`."""
    if h.ndim != 3 or h.shape[1] < 1:
        raise ValueError(f"last_step_forward: h must be (N, T, H) with T >= 1, got shape {h.shape}")
    return h[:, -1], h  # the cache is h itself (a custom_vjp residual must be an array)


def last_step_backward(dout, cache):
    """Return dh (N, T, H) for last_step_forward: dout at the last step, 0 at every other (only
    the last step reached the loss from here; backprop through time carries it to the others).
    """
    return jnp.zeros_like(cache).at[:, -1].set(dout)


# ----------------------------------------------------------------------------- temporal softmax loss

def temporal_softmax_loss(x, y, mask):
    """Softmax cross-entropy at every time step where mask is True, SUMMED over the time steps
    and AVERAGED over the N sequences (cs231n's normalisation); returns `(loss, dx)`.

    x (N, T, V) scores, y (N, T) integer targets in 0..V-1 (checked where data enters: values
    cannot be checked under jit), mask (N, T) boolean.
    cs231n assignment 3 (temporal_softmax_loss): softmax_loss's gradient per (n, t), masked
    and divided by N: dx[n, t] = mask[n, t] (softmax(x[n, t]) - onehot(y[n, t])) / N.
    A masked-out step contributes to neither the loss nor the gradient (the mask belongs in
    both; a fully masked sequence has loss 0 and gradient 0).
    """
    name = "temporal_softmax_loss"
    if x.ndim != 3:
        raise ValueError(f"{name}: x must be (N, T, V), got shape {x.shape}")
    if y.shape != x.shape[:2] or mask.shape != x.shape[:2]:
        raise ValueError(f"{name}: y and mask must be {x.shape[:2]}, got {y.shape} and {mask.shape}")
    _check_integers(name, "y (targets)", y)
    if mask.dtype != jnp.bool_:
        raise ValueError(f"{name}: mask must be boolean (which steps count), got dtype {mask.dtype}; "
                         "pass mask.astype(bool) for 0/1 values")
    n = x.shape[0]
    # stable log-softmax; stop_gradient: autodiff need not route a zero gradient through the max
    shifted = x - jax.lax.stop_gradient(jnp.max(x, axis=-1, keepdims=True))
    log_probs = shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=-1, keepdims=True))
    onehot = jax.nn.one_hot(y, x.shape[-1], dtype=x.dtype)
    loss = -jnp.sum(jnp.where(mask, jnp.sum(log_probs * onehot, axis=-1), 0)) / n
    dx = jnp.where(mask[..., None], jnp.exp(log_probs) - onehot, 0) / n
    return loss, dx


LAYERS = {
    "word_embedding": (word_embedding_forward,
                       manual_vjp(word_embedding_forward, word_embedding_backward, no_grad_argnums=(0,))),
    "temporal_affine": (temporal_affine_forward, manual_vjp(temporal_affine_forward, temporal_affine_backward)),
    "last_step": (last_step_forward, manual_vjp(last_step_forward, last_step_backward)),
    "positional_embedding": (positional_embedding_forward,
                             manual_vjp(positional_embedding_forward, positional_embedding_backward)),
    # a loss: the pair returns (value, gradient); autodiff differentiates its value
    "temporal_softmax_loss": (temporal_softmax_loss, loss_vjp(temporal_softmax_loss)),
}
