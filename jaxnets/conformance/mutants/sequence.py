"""Planted mistakes in the sequence layers' backwards: an embedding's dW assigned (repeated words
keep one gradient), the temporal loss masked in the forward only, the temporal affine's db per
step, the positional gradient from one sequence, the last step's gradient sent to the first."""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from jaxnets.conformance.mutants.mutant import Mutant
from jaxnets.ops.dense import weight_gradient


def word_embedding_backward_assigns(dout, cache):
    x, W = cache
    # .set: at a repeated index one position's gradient overwrites the others (dW[x] = dout)
    return jnp.zeros_like(W).at[jnp.asarray(x)].set(dout, mode="drop", wrap_negative_indices=False)


def temporal_softmax_loss_masked_in_forward_only(x, y, mask):
    n = x.shape[0]
    shifted = x - lax.stop_gradient(jnp.max(x, axis=-1, keepdims=True))
    log_probs = shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=-1, keepdims=True))
    onehot = jnp.eye(x.shape[-1], dtype=x.dtype)[y]
    loss = -jnp.sum(jnp.where(mask, jnp.sum(log_probs * onehot, axis=-1), 0)) / n
    dx = (jnp.exp(log_probs) - onehot) / n  # every step's gradient, the padded ones too
    return loss, dx


def temporal_affine_backward_db_per_step(dout, cache):
    x, w = cache
    rows = x.shape[0] * x.shape[1]
    dout2 = dout.reshape(rows, -1)
    return dout @ w.T, weight_gradient(x.reshape(rows, -1), dout2), jnp.sum(dout, axis=0)  # (T, M): not over t


def positional_embedding_backward_first_sequence(dout, cache):
    return dout, jnp.zeros_like(cache).at[:dout.shape[1]].set(dout[0])  # one sequence's, not the batch's sum


def last_step_backward_at_first_step(dout, cache):
    return jnp.zeros_like(cache).at[:, 0].set(dout)  # the gradient sent to step 0, not T - 1


PLANTED = (
    Mutant("embedding_backward_assigns", "word_embedding", word_embedding_backward_assigns,
           "dW[x] = dout (assignment): a word at several positions keeps one position's gradient"),
    Mutant("temporal_loss_masked_in_forward_only", "temporal_softmax_loss", temporal_softmax_loss_masked_in_forward_only,
           "the mask applied to the loss but not to dx: padded steps still get gradient"),
    Mutant("temporal_affine_db_per_step", "temporal_affine", temporal_affine_backward_db_per_step,
           "db summed over the batch only, one bias gradient per time step"),
    Mutant("positional_gradient_from_one_sequence", "positional_embedding", positional_embedding_backward_first_sequence,
           "dW_pos[t] = dout[0, t]: the first sequence's gradient instead of the sum over the batch"),
    Mutant("last_step_gradient_at_first_step", "last_step", last_step_backward_at_first_step,
           "dh[:, 0] = dout: the summary's gradient sent to the first step instead of the last"),
)
