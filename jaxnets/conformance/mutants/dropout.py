"""Planted mistakes in dropout's backward: the mask without its 1 / (1 - rate), or no mask."""
from __future__ import annotations

from jaxnets.conformance.mutants.mutant import Mutant


def dropout_backward_mask_not_rescaled(dout, cache):
    return dout if cache is None else dout * (cache != 0)  # the 1 / (1 - rate) forgotten


def dropout_backward_mask_ignored(dout, cache):
    return dout  # as if nothing had been dropped


PLANTED = (
    Mutant("dropout_mask_not_rescaled", "dropout", dropout_backward_mask_not_rescaled,
           "dx = dout * keep, without the 1 / (1 - rate) of inverted dropout"),
    Mutant("dropout_mask_ignored_in_backward", "dropout", dropout_backward_mask_ignored,
           "dx = dout, the dropped values get a gradient"),
)
