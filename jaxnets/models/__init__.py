"""The four networks of the source documents, each a `Model` of plain functions."""
from jaxnets.models.base import Model
from jaxnets.models.convnet import conv_net
from jaxnets.models.mlp import digits_mlp, two_layer_net
from jaxnets.models.occupancy import occupancy_net

MODELS = {
    "occupancy": occupancy_net,
    "digits": digits_mlp,
    "two_layer": two_layer_net,
    "conv": conv_net,
}

__all__ = ["Model", "MODELS", "occupancy_net", "digits_mlp", "two_layer_net", "conv_net"]
