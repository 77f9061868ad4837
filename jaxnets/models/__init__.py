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


def build_model(name, config):
    """The model `name` of MODELS from a stored (JSON) config, e.g. a run's or a checkpoint's."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    config = dict(config)
    if "input_shape" in config:  # JSON stores the tuple as a list
        config["input_shape"] = tuple(config["input_shape"])
    return MODELS[name](**config)


__all__ = ["Model", "MODELS", "build_model", "occupancy_net", "digits_mlp", "two_layer_net", "conv_net"]
