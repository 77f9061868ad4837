"""Examples for `pytest --gradcheck` / `jaxnets gradcheck` (ours, not the tutorial's): the
shapes of one valid call; the checker draws its own values."""
import numpy as np


def f_example():
    return np.ones((3, 4)), np.ones((3, 4))
