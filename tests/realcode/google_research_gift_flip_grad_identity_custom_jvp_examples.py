"""Examples for `pytest --gradcheck` / `jaxnets gradcheck` (ours, not google-research's): the
shapes of one valid call; the checker draws its own values."""
import numpy as np


def flip_grad_identity_example():
    return (np.ones((3, 4)),)
