"""The one Model signature, the fast-gradient rule, and bounded compiled programs.

Every model's loss and gradient, in every mode, take `(params, state, x, y, key)` and return
the new state ({} for a model without); a fast gradient that ignores state and key is refused
when a model with batch norm or dropout is built; and training many different models in one
process keeps only a bounded number of compiled programs (and models) alive."""
import gc
import weakref

import jax
import numpy as np
import pytest

from jaxnets.grads import TRAIN_MODES, gradient
from jaxnets.models import MODELS
from jaxnets.models.base import FastGradient, stateless_fast
from jaxnets.programs import MAX_PROGRAMS, live_programs
from jaxnets.training import TrainConfig, train

SMALL = {
    "occupancy": {"hidden": 3, "n_features": 4},
    "digits": {"hidden": 6, "input_size": 12, "num_classes": 4},
    "two_layer": {"input_size": 12, "hidden_size": 7, "num_classes": 5, "reg": 0.3},
    "conv": {"input_shape": (2, 6, 6), "num_filters": 3, "num_classes": 4},
    "fc_net": {"hidden_dims": [7, 6], "input_size": 5, "num_classes": 4, "norm": "batchnorm", "dropout": 0.3},
    "deep_conv": {"input_shape": (2, 8, 8), "filters": (3, 4), "hidden": 5, "num_classes": 4, "dropout": 0.3},
    "char_lm": {"vocab_size": 5, "seq_len": 4, "embed": 2, "hidden": 3, "cell": "gru"},
    "row_lstm": {"input_shape": (1, 4, 3), "hidden": 3, "num_classes": 4, "cell": "rnn"},
    "transformer_lm": {"vocab_size": 5, "seq_len": 4, "dim": 4, "heads": 2, "blocks": 1, "ffn": 6},
}


def _batch(model, n=3):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, *model.input_shape)).astype(np.float32)
    if model.token_inputs:
        x = rng.integers(0, model.num_classes, (n, *model.input_shape)).astype(np.int32)
    y = rng.integers(0, model.num_classes, (n, *model.label_shape))
    return x, (y.astype(np.float32) if model.binary else y.astype(np.int32))


def test_every_registered_model_is_checked_here():
    assert sorted(SMALL) == sorted(MODELS)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_model_and_mode_has_one_signature(name):
    model = MODELS[name](**SMALL[name])
    params, state = model.init(jax.random.key(0)), model.init_state()
    x, y = _batch(model)
    key = jax.random.key(1)
    assert (state != {}) == model.stateful
    shapes = lambda tree: jax.tree.map(lambda a: (a.shape, a.dtype), jax.eval_shape(lambda: tree))  # noqa: E731
    for mode in TRAIN_MODES:
        value, grads, new_state = jax.eval_shape(gradient(model, mode), params, state, x, y, key)
        assert value.shape == () and shapes(grads) == shapes(params), mode
        assert jax.tree.structure(new_state) == jax.tree.structure(state), mode
    value, new_state = jax.eval_shape(lambda p: model.loss(p, state, x, y, key), params)
    assert value.shape == () and jax.tree.structure(new_state) == jax.tree.structure(state)
    if model.stochastic:
        with pytest.raises(ValueError, match="needs a key"):
            model.loss_and_grads(params, state, x, y)


def test_a_fast_gradient_that_ignores_state_and_key_is_refused_by_construction():
    mlp = MODELS["two_layer"](**SMALL["two_layer"])
    assert not mlp.fast_gradient.threads_state
    for config in (SMALL["fc_net"], {**SMALL["fc_net"], "norm": None}, {**SMALL["fc_net"], "dropout": 0.0}):
        model = MODELS["fc_net"](**config)
        with pytest.raises(ValueError, match="fast gradient ignores state and key"):
            model.replace(fast_gradient=mlp.fast_gradient)
    with pytest.raises(ValueError, match="must be a FastGradient"):
        mlp.replace(fast_gradient=lambda decode, layout: None)
    # one that threads them is accepted, and is what mode "fast" runs
    model = MODELS["fc_net"](**SMALL["fc_net"])
    threaded = model.replace(fast_gradient=FastGradient(lambda decode, layout: gradient(model, "manual", decode, layout),
                                                        threads_state=True))
    params, state = model.init(jax.random.key(0)), model.init_state()
    x, y = _batch(model)
    got = gradient(threaded, "fast")(params, state, x, y, jax.random.key(2))
    want = gradient(model, "manual")(params, state, x, y, jax.random.key(2))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_stateless_fast_gradient_returns_the_state_it_is_given():
    mlp = MODELS["digits"](**SMALL["digits"])
    params = mlp.init(jax.random.key(0))
    x, y = _batch(mlp)
    fast = stateless_fast(lambda decode, layout: lambda p, x, y: (0.0, p))
    assert fast.make(None, None)(params, {"s": 1}, x, y)[2] == {"s": 1}
    assert gradient(mlp, "fast")(params, {}, x, y)[2] == {}


def test_training_many_models_keeps_a_bounded_number_of_programs_alive():
    """20 different small models trained in one process: every program cache holds at most
    MAX_PROGRAMS programs, and the models trained first are garbage once the caches have
    moved on (nothing, ours or JAX's, keeps them or their compiled steps alive)."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 6)).astype(np.float32), rng.integers(0, 3, 32).astype(np.int32)
    config = TrainConfig(learning_rate=0.1, iterations=2)
    models = []
    for i in range(20):
        model = MODELS["digits"](hidden=2 + i, input_size=6, num_classes=3)
        train(model, model.init(jax.random.key(i)), (x, y), config, progress=False)
        models.append(weakref.ref(model))
        del model
    gc.collect()
    assert all(kept <= bound for kept, bound in live_programs().values()), live_programs()
    alive = [ref() is not None for ref in models]
    assert not any(alive[: 20 - MAX_PROGRAMS]), alive
