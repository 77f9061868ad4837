"""Examples for `pytest --gradcheck` / `jaxnets gradcheck` (ours, not jax's): the shapes of
one valid call; the checker draws its own values."""
import numpy as np


def relu_example():
    return (np.ones((3, 4)),)
