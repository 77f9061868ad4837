"""The fast layouts of the hand-written gradient (`Model.fast_gradient`, mode "fast") beyond
what the equivalence suite checks for every model (tests/test_models_equivalence.py compares
"fast" with every mode, NumPy and finite differences; the fused conv-ReLU-pool layer is an op
of the suite): every chunking of the one-pass MLP gradient, uint8 pixels decoded inside the
gradient, the fallback to "manual", and the training steps of `jaxnets.training.chunk_fn`."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnets.data import PixelTransform, scale_pixels
from jaxnets.grads import MODES, value_and_grad
from jaxnets.models import MODELS, conv_net, two_layer_net
from jaxnets.models.mlp import one_pass_gradient
from jaxnets.training import TrainConfig, chunk_fn, initial_state, make_optimizer, sample_batch_indices
from jaxnets.conformance import (MODEL_VARIANTS, TOL_ANALYTIC_F32_MODELS, TOL_ANALYTIC_F64, compare_arrays, make_model_case)
from reference_numpy import models as npm

SEEDS = (0, 1)


def _sources(case, dtype=np.float64):
    """Loss and grads of `case` from the three JAX modes (jitted) and the NumPy model."""
    model = MODELS[case.name](**case.config)
    params = {k: jnp.asarray(v, dtype) for k, v in case.params.items()}
    x = jnp.asarray(case.x, dtype)
    out = {mode: jax.jit(value_and_grad(model, mode))(params, x, case.y) for mode in MODES}
    out["numpy"] = npm.MODELS[case.name](**case.config).loss_and_grads(case.params, case.x, case.y)
    return model, params, x, out


def _assert_agrees(label, got, sources, tol):
    loss, grads = got
    failures = []
    for name, (ref_loss, ref_grads) in sources.items():
        checks = [compare_arrays("loss", "fast", loss, name, ref_loss, tol)]
        checks += [compare_arrays(k, "fast", grads[k], name, ref_grads[k], tol) for k in ref_grads]
        failures += [str(c) for c in checks if not c.ok]
    assert not failures, f"{label}:\n" + "\n".join(failures)


# ----------------------------------------------------------------------------- one-pass MLP


@pytest.mark.parametrize("stress", [False, True], ids=["ordinary", "stress"])
@pytest.mark.parametrize("name,variant", [(n, v) for n in ("digits", "two_layer") for v in MODEL_VARIANTS[n]])
def test_one_pass_mlp_gradient_matches_every_mode_and_numpy_at_every_chunking(name, variant, stress):
    for seed in SEEDS:
        case = make_model_case(name, variant, seed, stress)
        model, params, x, sources = _sources(case)
        reg = case.config.get("reg", 0.0)
        # n chunks of one row (the loop), a short last chunk, one chunk of all n (what GPUs and
        # TPUs take, and the CPU for n <= CPU_CHUNK)
        for chunk in (1, 3, x.shape[0]):
            got = jax.jit(one_pass_gradient(reg, chunk=chunk)())(params, x, case.y)
            _assert_agrees(f"{case.label} chunk={chunk}", got, sources, TOL_ANALYTIC_F64)


def test_one_pass_mlp_gradient_float32_within_the_model_bound():
    case = make_model_case("two_layer", "document", 0)
    _, params, x, sources = _sources(case, np.float32)
    got = jax.jit(one_pass_gradient(case.config["reg"], chunk=3)())(params, x, case.y)
    assert got[1]["W1"].dtype == jnp.float32
    _assert_agrees(case.label + " float32", got, {"numpy": sources["numpy"]}, TOL_ANALYTIC_F32_MODELS)


def _mean_image_transform(rng, shape):
    return PixelTransform("mean_subtracted", np.float32(1 / 255), (rng.random(shape) * 0.4).astype(np.float32), shape)


@pytest.mark.parametrize("name", ["digits", "two_layer"])
def test_uint8_pixels_decoded_inside_the_gradient_equal_the_decoded_floats(name):
    """Every mode (and the one-pass gradient's chunk loop) on stored pixels, decoded inside."""
    rng = np.random.default_rng(0)
    transform = _mean_image_transform(rng, (3, 4))
    images = rng.integers(0, 256, (23, 3, 4)).astype(np.uint8)
    y = rng.integers(0, 4, 23)
    model = MODELS[name](**MODEL_VARIANTS[name]["small"])
    params = {k: jnp.asarray(v, jnp.float64) for k, v in model.init(jax.random.key(1)).items()}
    decode = transform.decoder(jnp.float64)
    stored = transform.layout(images)
    reference = value_and_grad(model, "manual")(params, decode(stored), y)
    got = {mode: jax.jit(value_and_grad(model, mode, decode))(params, stored, y) for mode in MODES + ("fast",)}
    got["one-pass, chunks of 5"] = one_pass_gradient(model.config.get("reg", 0.0), chunk=5)(decode)(params, stored, y)
    for label, result in got.items():
        _assert_agrees(f"{label} on uint8 pixels", result, {"manual": reference}, TOL_ANALYTIC_F64)


def test_decoder_is_scale_pixels_to_one_rounding():
    images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    transform = PixelTransform("scaled", np.float32(1 / 255), np.zeros((), np.float32), (16, 16))
    decoded = np.asarray(transform.decoder()(transform.layout(images)))
    assert decoded.dtype == np.float32
    np.testing.assert_allclose(decoded, scale_pixels(images).reshape(1, -1), rtol=np.finfo(np.float32).eps, atol=0)
    np.testing.assert_array_equal(transform(images), np.asarray(images, np.float32).reshape(1, -1) * np.float32(1 / 255))


# ----------------------------------------------------------------------------- ConvNet


def test_fused_conv_net_float32_and_uint8_pixels():
    case = make_model_case("conv", "document", 0)
    _, params, _, _ = _sources(case, np.float32)
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28)).astype(np.uint8)
    transform = PixelTransform("conv", np.float32(1 / 255), np.zeros((), np.float32), (28, 28))
    reference = npm.conv_net().loss_and_grads(case.params, transform.layout(images) / 255.0, case.y)
    got = jax.jit(value_and_grad(conv_net(), "fast", transform.decoder()))(params, transform.layout(images), case.y)
    assert got[1]["W1"].dtype == jnp.float32
    _assert_agrees("conv uint8 float32", got, {"numpy": reference}, TOL_ANALYTIC_F32_MODELS)


def test_a_model_without_a_fast_layout_trains_fast_as_manual():
    case = make_model_case("conv", "strided", 0)
    model, params, x, sources = _sources(case)
    assert model.fast_gradient is None  # the fused layer needs conv stride 1
    got = jax.jit(value_and_grad(model, "fast"))(params, x, case.y)
    _assert_agrees(case.label + " fallback", got, sources, TOL_ANALYTIC_F64)


# ----------------------------------------------------------------------------- training steps

MODEL = two_layer_net(input_size=12, hidden_size=7, num_classes=3, std=0.1, reg=0.05)


def _data(n=40):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, 12))
    return x, np.argmax(x @ rng.standard_normal((12, 3)), axis=1).astype(np.int32)


def _chunk_run(config, x, y, steps, key):
    params = {k: jnp.asarray(v, jnp.float64) for k, v in MODEL.init(jax.random.key(0)).items()}
    optimizer = make_optimizer(config, x.shape[0])
    state = initial_state(params, optimizer.init(params))
    state, losses, _ = chunk_fn(MODEL, config, x.shape[0], steps)(state, x, y, key, np.int32(steps))
    return params, state, np.asarray(losses)


def _check_params(got, expected):
    for k in expected:
        c = compare_arrays(k, "chunk", got[k], "loop", expected[k], TOL_ANALYTIC_F64)
        assert c.ok, str(c)


def test_full_batch_chunk_steps_are_gradient_descent_steps():
    x, y = _data()
    config = TrainConfig(learning_rate=0.3, iterations=4, dtype="float64")
    params, state, losses = _chunk_run(config, x, y, 4, jax.random.key(0))
    grad_fn = value_and_grad(MODEL, "manual")
    expected, want = dict(params), []
    for _ in range(4):
        loss, g = grad_fn(expected, x, y)
        want.append(float(loss))
        expected = {k: expected[k] - 0.3 * g[k] for k in expected}
    _check_params(state.params, expected)
    np.testing.assert_allclose(losses, want, rtol=TOL_ANALYTIC_F64)
    assert int(state.step) == 4


def test_minibatch_chunk_draws_each_steps_batch_from_seed_and_step():
    """The chunk draws all its batches up front; they are the per-step draws
    sample_batch_indices(key, t) of a plain loop (so a resumed run, or D devices, draw them too)."""
    x, y = _data()
    key = jax.random.key(5)
    config = TrainConfig(learning_rate=0.2, iterations=6, batch_size=8, dtype="float64")
    params, state, losses = _chunk_run(config, x, y, 6, key)
    grad_fn = value_and_grad(MODEL, "manual")
    expected, want = dict(params), []
    for t in range(6):
        idx = np.asarray(sample_batch_indices(key, t, 40, 8))
        loss, g = grad_fn(expected, x[idx], y[idx])
        want.append(float(loss))
        expected = {k: expected[k] - 0.2 * g[k] for k in expected}
    _check_params(state.params, expected)
    np.testing.assert_allclose(losses, want, rtol=TOL_ANALYTIC_F64)
    idx = jax.random.randint(jax.random.fold_in(key, 3), (8,), 0, 40)
    np.testing.assert_array_equal(np.asarray(idx), np.asarray(sample_batch_indices(key, 3, 40, 8)))
