"""Examples for `pytest --gradcheck` / `jaxnets gradcheck` (ours, not the tutorial's): the
shapes of one valid call; the checker draws its own values (x >= 0: its domain)."""
from jaxnets.gradcheck import Example
import numpy as np


def f_example():
    return Example((np.ones((4, 5)),), {}, 0, ("nonnegative",))
