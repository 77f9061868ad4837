"""Planted mistakes in the affine layer's backward: the documents' erratum (one bias gradient
for the whole vector) and the column layout's transposed dW."""
from __future__ import annotations

import jax.numpy as jnp

from jaxnets.conformance.mutants.mutant import Mutant


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


PLANTED = (
    Mutant("bias_summed_over_all_axes", "affine", affine_backward_bias_summed_over_all_axes,
           "db = sum(dZ) over units and samples: one value for the whole bias vector", True),
    Mutant("affine_transposed_dw", "affine", affine_backward_transposed_dw,
           "dW = dZ^T X, the column layout's (M, D) orientation"),
)
