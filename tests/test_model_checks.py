"""Every model factory refuses out-of-range sizes and strengths with one ValueError naming the
factory, the argument and the value; stored arrays are checked against a model's config."""
import numpy as np
import pytest

from jaxnets.models import (MODELS, char_lm, conv_net, deep_conv_net, digits_mlp, fc_net, occupancy_net, row_lstm,
                            transformer_lm, two_layer_net)
from jaxnets.models.checks import check_arrays_fit, expected_arrays

BAD = [
    (occupancy_net, {"hidden": 0}, "occupancy_net: hidden must be an integer >= 1, got 0"),
    (occupancy_net, {"n_features": -1}, "n_features must be an integer >= 1, got -1"),
    (digits_mlp, {"hidden": 0}, "digits_mlp: hidden must be an integer >= 1, got 0"),
    (digits_mlp, {"num_classes": 1}, "num_classes must be an integer >= 2, got 1"),
    (two_layer_net, {"hidden_size": 0}, "two_layer_net: hidden_size must be an integer >= 1, got 0"),
    (two_layer_net, {"hidden_size": 2.5}, "hidden_size must be an integer >= 1, got 2.5"),
    (two_layer_net, {"reg": -0.1}, "two_layer_net: reg must be a finite number >= 0, got -0.1"),
    (two_layer_net, {"reg": float("nan")}, "reg must be a finite number >= 0, got nan"),
    (two_layer_net, {"std": 0.0}, "std must be a finite number > 0, got 0.0"),
    (conv_net, {"num_filters": 0}, "conv_net: num_filters must be an integer >= 1, got 0"),
    (conv_net, {"pad": -1}, "pad must be an integer >= 0, got -1"),
    (conv_net, {"reg": -1}, "conv_net: reg must be a finite number >= 0, got -1"),
    (conv_net, {"input_shape": (1, 0, 28)}, "input_shape[1] must be an integer >= 1, got 0"),
    (conv_net, {"weight_scale": -1.0}, "weight_scale must be a finite number > 0 or None, got -1.0"),
    (fc_net, {"hidden_dims": (100, 0)}, "fc_net: hidden_dims[1] must be an integer >= 1, got 0"),
    (fc_net, {"reg": -1e-3}, "fc_net: reg must be a finite number >= 0, got -0.001"),
    (fc_net, {"dropout": 1.0}, "dropout (the probability of dropping) must be in [0, 1), got 1.0"),
    (fc_net, {"weight_scale": None}, "fc_net: weight_scale must be a finite number > 0, got None"),
    (deep_conv_net, {"hidden": 0}, "deep_conv_net: hidden must be an integer >= 1, got 0"),
    (deep_conv_net, {"hidden": -4}, "deep_conv_net: hidden must be an integer >= 1, got -4"),
    (deep_conv_net, {"filters": (32, 0)}, "deep_conv_net: filters[1] must be an integer >= 1, got 0"),
    (deep_conv_net, {"filters": ()}, "filters must hold at least one integer >= 1"),
    (deep_conv_net, {"reg": -1e-4}, "deep_conv_net: reg must be a finite number >= 0, got -0.0001"),
    (deep_conv_net, {"num_classes": 0}, "num_classes must be an integer >= 2, got 0"),
    (char_lm, {"vocab_size": 1}, "char_lm: vocab_size must be an integer >= 2, got 1"),
    (char_lm, {"hidden": 0}, "char_lm: hidden must be an integer >= 1, got 0"),
    (char_lm, {"cell": "lstn"}, "char_lm: cell must be one of rnn, lstm, gru, got 'lstn'"),
    (row_lstm, {"input_shape": (28, 28)}, "row_lstm: input_shape must be (channels, height, width)"),
    (row_lstm, {"hidden": 0}, "row_lstm: hidden must be an integer >= 1, got 0"),
    (transformer_lm, {"dim": 0}, "transformer_lm: dim must be an integer >= 1, got 0"),
    (transformer_lm, {"heads": 3}, "transformer_lm: dim must be divisible by heads, got dim=64, heads=3"),
    (transformer_lm, {"activation": "tanh"}, "transformer_lm: activation must be one of relu, gelu, got 'tanh'"),
]


@pytest.mark.parametrize("factory, kwargs, message", BAD, ids=[f"{f.__name__}-{k}" for f, k, _ in BAD])
def test_factories_refuse_out_of_range_sizes_and_strengths(factory, kwargs, message):
    with pytest.raises(ValueError) as info:
        factory(**kwargs)
    assert message in str(info.value)


def test_every_registered_factory_is_covered_and_its_defaults_build():
    covered = {f.__name__ for f, _, _ in BAD}
    assert covered == {f.__name__ for f in MODELS.values()}
    for factory in MODELS.values():
        factory()


def test_stored_arrays_are_checked_against_the_models_config():
    small, big = two_layer_net(hidden_size=5), two_layer_net(hidden_size=7)
    params, state = expected_arrays(small)
    assert params["W1"] == (784, 5) and state == {}
    arrays = {k: np.zeros(s, np.float32) for k, s in expected_arrays(big)[0].items()}
    with pytest.raises(ValueError, match=r"params.npz: parameters 'W1' has shape \(784, 7\), model two_layer .* "
                                         r"needs \(784, 5\)"):
        check_arrays_fit(small, arrays, params, "parameters", "params.npz")
    with pytest.raises(ValueError, match=r"do not belong to model"):
        check_arrays_fit(small, {"W1": arrays["W1"]}, params, "parameters", "params.npz")
    _, bn_state = expected_arrays(deep_conv_net(filters=(2,), hidden=3))
    assert bn_state["running_mean1"] == (2,) and bn_state["running_var2"] == (3,)
