"""The four networks of the source documents, the deeper nets of cs231n assignment 2 and the
sequence models of assignment 3 (a character language model, a row-by-row image classifier, a
tiny decoder-only transformer language model),
each a `Model` of plain functions.

Every factory is registered by name in MODELS (`register_model`), in document order.
"""
from jaxnets.models.base import MODELS, Model, build_model, register_model
from jaxnets.models.occupancy import occupancy_net  # noqa: I001 - import order is MODELS' order
from jaxnets.models.mlp import digits_mlp, two_layer_net
from jaxnets.models.convnet import conv_net
from jaxnets.models.deep import deep_conv_net, fc_net
from jaxnets.models.sequence import char_lm, row_lstm
from jaxnets.models.transformer import transformer_lm
from jaxnets.models.saved import Saved, load_params, save_params

__all__ = ["Model", "MODELS", "build_model", "register_model", "occupancy_net", "digits_mlp",
           "two_layer_net", "conv_net", "fc_net", "deep_conv_net", "char_lm", "row_lstm",
           "transformer_lm", "save_params", "load_params", "Saved"]
