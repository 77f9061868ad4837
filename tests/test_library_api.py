"""The Python API a JAX user meets first, and each trap a new user fell into (issue 28): an
optax optimizer or schedule in `TrainConfig`, parameters saved and loaded with their model,
a model with state asked for without it, the sorted built-in sample, the layers' defaults, the
public `manual_vjp`, `help(jaxnets)`."""
import importlib
import inspect
import pkgutil
import pydoc
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnets
from jaxnets import ops
from jaxnets.data import load_sample
from jaxnets.grads import gradient
from jaxnets.models import Saved, fc_net, load_params, save_params, two_layer_net
from jaxnets.training import TrainConfig, accuracy, train


@pytest.fixture(scope="module")
def data():
    x_tr, y_tr, x_val, y_val = load_sample().split(1000, seed=0)
    x_tr = (x_tr[:800].reshape(800, -1) / 255).astype(np.float32)
    x_val = (x_val[:200].reshape(200, -1) / 255).astype(np.float32)
    return x_tr, y_tr[:800], x_val, y_val[:200]


def test_train_takes_an_optax_optimizer(data):
    model = two_layer_net(hidden_size=16, std=1e-2)
    params = model.init(jax.random.key(0))
    config = TrainConfig(optimizer=optax.adam(1e-3), iterations=30, batch_size=32)
    result = train(model, params, data, config, progress=False)
    assert result.steps_done == 30 and result.history["loss"][-1] < result.history["loss"][0]
    assert result.history["lr"][0] is None  # an optax object keeps its rate to itself
    assert config.to_dict()["optimizer"] == "optax GradientTransformation"
    # the same steps as optax.adam driven by hand with the same gradient and batches: adam through
    # TrainConfig equals the named optax-adam
    named = train(model, params, data, TrainConfig(optimizer="optax-adam", learning_rate=1e-3, iterations=30,
                                                   batch_size=32), progress=False)
    for k in params:
        np.testing.assert_allclose(result.params[k], named.params[k], rtol=1e-6, atol=1e-7)


def test_train_takes_an_optax_schedule(data):
    model = two_layer_net(hidden_size=16, std=1e-2)
    params = model.init(jax.random.key(0))
    schedule = optax.linear_schedule(0.1, 0.0, 10)
    result = train(model, params, data, TrainConfig(learning_rate=schedule, iterations=10, batch_size=32,
                                                    report_every=5), progress=False)
    assert result.history["lr"] == pytest.approx([0.1, 0.05, 0.0])


@pytest.mark.parametrize("changes, message", [
    ({"optimizer": optax.sgd(0.1), "learning_rate": 0.1}, "learning_rate=0.1 with an optax optimizer"),
    ({"optimizer": optax.sgd(0.1), "decay": 0.9}, "decay=0.9 with an optax optimizer"),
    ({"learning_rate": optax.constant_schedule(0.1), "decay": 0.9}, "decay=0.9 with a learning-rate schedule"),
    ({}, "learning_rate is needed with the named optimizer 'sgd'"),
    ({"optimizer": optax.adam, "learning_rate": 0.1}, "or any optax GradientTransformation"),
])
def test_train_config_refuses_a_mixed_optimizer_in_one_line(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        TrainConfig(iterations=1, **changes).check()
    assert "\n" not in str(err.value)


def test_params_saved_and_loaded_with_their_model(tmp_path):
    model = fc_net((8, 6), norm="batchnorm")
    params, state = model.init(jax.random.key(1)), model.init_state()
    path = save_params(tmp_path / "net", model, params, state)
    assert path.name == "net.npz"
    with np.load(path, allow_pickle=False) as f:  # the documented format, readable without jaxnets
        assert "params/W1" in f.files and "state/running_mean1" in f.files and "jaxnets.json" in f.files
    loaded = load_params(path)
    assert isinstance(loaded, Saved) and loaded.model.name == "fc_net" and loaded.model.config["norm"] == "batchnorm"
    for k in params:
        np.testing.assert_array_equal(loaded.params[k], params[k])
    x = jax.random.normal(jax.random.key(2), (5, 784))
    np.testing.assert_array_equal(loaded.model.predict(loaded.params, x, loaded.state), model.predict(params, x, state))
    assert load_params(path, model).params.keys() == params.keys()
    with pytest.raises(ValueError, match="holds model 'fc_net'"):
        load_params(path, two_layer_net())
    with pytest.raises(ValueError, match="do not belong to model"):
        save_params(tmp_path / "bad", two_layer_net(), params)
    np.savez(tmp_path / "plain.npz", W1=np.zeros(3))
    with pytest.raises(ValueError, match="not a jaxnets-params/1 file"):
        load_params(tmp_path / "plain.npz")


def test_a_model_with_state_refuses_a_missing_state_in_one_line():
    model = fc_net((8,), norm="batchnorm")
    params = model.init(jax.random.key(0))
    x, y = jnp.ones((4, 784)), jnp.zeros(4, jnp.int32)
    with pytest.raises(ValueError, match=r"^accuracy: model 'fc_net' has batch-norm running statistics: pass state="):
        accuracy(model, params, x, y)
    with pytest.raises(ValueError, match="batch-norm running statistics: pass state="):
        model.predict(params, x)
    assert accuracy(model, params, x, y, state=model.init_state()) in (0.0, 0.25, 0.5, 0.75, 1.0)
    for mode in ("manual", "autodiff", "custom_vjp", "fast"):  # {} would silently drop the statistics
        with pytest.raises(ValueError, match=r"^model 'fc_net' has batch-norm running statistics .*: pass them as state"):
            gradient(model, mode)(params, {}, x, y)
        _, _, new_state = jax.jit(gradient(model, mode))(params, model.init_state(), x, y)
        assert sorted(new_state) == sorted(model.init_state())
    plain = two_layer_net()  # a model without state needs none
    assert 0 <= accuracy(plain, plain.init(jax.random.key(0)), x, y) <= 1


def test_the_built_in_sample_is_sorted_and_split_shuffles_it():
    sample = load_sample()
    assert np.all(np.diff(sample.y_train) >= 0), "the docstring says it is sorted by label"
    assert "sorted by label" in inspect.getdoc(load_sample)
    x_tr, y_tr, x_val, y_val = sample.split(1000, seed=0)
    assert x_tr.shape[0] == 4000 and x_val.shape[0] == 1000
    assert set(np.unique(y_val)) == set(range(10)) and np.bincount(y_val).min() > 50
    again = sample.split(1000, seed=0)
    np.testing.assert_array_equal(again[3], y_val)
    assert not np.array_equal(sample.split(1000, seed=1)[3], y_val)


@pytest.mark.parametrize("layers", [ops.CUSTOM_VJP, ops.AUTODIFF], ids=["custom_vjp", "autodiff"])
def test_layers_take_cs231n_and_pytorch_defaults(layers):
    x = jax.random.normal(jax.random.key(0), (6, 4))
    g, b = jnp.ones(4), jnp.zeros(4)
    out = layers.batchnorm(x, g, b)  # eps = 1e-5, as cs231n's bn_param and torch.nn.BatchNorm1d
    np.testing.assert_allclose(out, ops.batchnorm_forward(x, g, b, eps=1e-5)[0])
    np.testing.assert_allclose(layers.batchnorm(x, g, b, eps=1e-3), ops.batchnorm_forward(x, g, b, eps=1e-3)[0])
    dx = jax.grad(lambda x: jnp.sum(layers.batchnorm(x, g, b) ** 3))(x)
    assert dx.shape == x.shape and bool(jnp.all(jnp.isfinite(dx)))
    assert str(inspect.signature(layers.batchnorm)) == "(x, gamma, beta, eps=1e-05)"
    assert layers.layernorm(x, g, b).shape == x.shape and layers.leaky_relu(x).shape == x.shape
    images = jax.random.normal(jax.random.key(1), (2, 3, 4, 4))
    assert layers.spatial_batchnorm(images, jnp.ones(3), jnp.zeros(3)).shape == images.shape
    assert layers.max_pool(images).shape == (2, 3, 2, 2)
    assert inspect.signature(ops.running_average).parameters["momentum"].default == 0.9
    dropped = layers.dropout(x, jax.random.key(2))  # rate 0.5, PyTorch's p
    assert set(np.unique(np.asarray(dropped / x).round(6))) <= {0.0, 2.0}
    assert inspect.signature(ops.dropout_forward).parameters["rate"].default == 0.5
    with pytest.raises(TypeError, match="missing .*'gamma'"):
        layers.batchnorm(x)


def test_manual_vjp_is_public_and_wires_a_pair():
    def cube_forward(x):
        return x ** 3, x

    def cube_backward(dout, x):
        return 3 * x ** 2 * dout

    cube = ops.manual_vjp(cube_forward, cube_backward)
    assert "manual_vjp" in ops.__all__ and jax.grad(cube)(2.0) == 12.0


def test_gradient_modes_agree_from_python():
    model = two_layer_net(hidden_size=8, std=1e-1)
    params = model.init(jax.random.key(0))
    x, y = jax.random.normal(jax.random.key(1), (5, 784)), jnp.arange(5)
    manual = gradient(model, "manual")(params, {}, x, y)[1]
    auto = jax.jit(gradient(model, "autodiff"))(params, {}, x, y)[1]
    for k in params:
        np.testing.assert_allclose(manual[k], auto[k], rtol=1e-10, atol=1e-12)


def test_help_jaxnets_is_a_map_of_the_packages():
    text = pydoc.render_doc(jaxnets, renderer=pydoc.plaintext)
    for package in ("jaxnets.ops", "jaxnets.data", "jaxnets.models", "jaxnets.grads", "jaxnets.training",
                    "jaxnets.gradcheck", "jaxnets.conformance"):
        assert package in text
    assert jaxnets.training.TrainConfig is TrainConfig  # a bare `import jaxnets` reaches them


def test_every_public_package_has_a_docstring_and_all():
    names = ["jaxnets", "netspec", "reference_numpy"] + [
        m.name for m in pkgutil.iter_modules(jaxnets.__path__, "jaxnets.") if not m.name.rsplit(".", 1)[1].startswith("_")]
    for name in names:
        module = importlib.import_module(name)
        assert (module.__doc__ or "").strip(), f"{name} has no docstring"
        assert hasattr(module, "__all__"), f"{name} has no __all__"
