"""What several families' input generators share: how often one tries for inputs clear of
every kink, and weights scaled by their fan-in."""
from __future__ import annotations

import numpy as np

#: draws a value generator tries for kink-free inputs before giving up finite differences
ATTEMPTS = 20


def weight(rng, fan_in, shape):
    return rng.standard_normal(shape) / np.sqrt(max(fan_in, 1))
