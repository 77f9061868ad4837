"""Examples for `pytest --gradcheck` / `jaxnets gradcheck` (ours, not jax's): the shapes and
domains of one valid call; the checker draws its own values."""
from jaxnets.gradcheck import Example
import numpy as np


def xlogy_example():
    return Example((np.ones(4), np.ones(4)), {}, 0, ("real", "positive"))


def xlog1py_example():
    return Example((np.ones(4), np.ones(4)), {}, 0, ("real", "positive"))


def logit_example():
    return Example((np.full(4, 0.5),), {}, 0, ("unit",))
