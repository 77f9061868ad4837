"""NumPy float64 reference implementation of jaxnets: the oracle the JAX code is tested against.

`layers` holds every (forward, backward) pair with the same names as `jaxnets.ops`, plus
document 000's loop versions (`*_naive`); `models` the four networks with the same names,
configs and parameter shapes as `jaxnets.models`; `numerical` central finite differences and
cs231n's relative error. Imports nothing from JAX or jaxnets.
"""
from reference_numpy import layers, models, numerical
from reference_numpy.numerical import max_rel_error, numerical_gradient, numerical_gradient_array, rel_error
from reference_numpy.models import MODELS, conv_net, digits_mlp, occupancy_net, two_layer_net

__all__ = [
    "layers", "models", "numerical",
    "rel_error", "max_rel_error", "numerical_gradient", "numerical_gradient_array",
    "MODELS", "occupancy_net", "digits_mlp", "two_layer_net", "conv_net",
]
