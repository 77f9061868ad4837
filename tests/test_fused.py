"""The fast paths of jaxnets.fused against the gradient modes and NumPy, with the equivalence
suite's own cases and tolerances: the one-pass MLP gradient (every chunking, uint8 pixels), the
fused conv-ReLU-pool layer (geometries, ties, exact zeros), the ConvNet through it, and the
fused many-step loop against jaxnets.train."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.equivalence import (
    MODEL_VARIANTS,
    TOL_ANALYTIC_F32_MODELS,
    TOL_ANALYTIC_F64,
    compare_arrays,
    make_model_case,
)
from jaxnets import fused
from jaxnets.data import scale_pixels
from jaxnets.grads import MODES, value_and_grad
from jaxnets.models import MODELS, conv_net, two_layer_net
from jaxnets.ops import conv_backward, conv_forward, max_pool_backward, max_pool_forward, relu_backward, relu_forward
from jaxnets.train import TrainConfig, sample_batch_indices, train
from reference_numpy import layers as npl
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
def test_one_pass_mlp_gradient_matches_every_mode_and_numpy(name, variant, stress):
    for seed in SEEDS:
        case = make_model_case(name, variant, seed, stress)
        model, params, x, sources = _sources(case)
        for chunk in (1, 3, None):  # n chunks of one row, a short last chunk, one chunk of all n
            got = jax.jit(fused.mlp_one_pass_value_and_grad(model, chunk=chunk))(params, x, case.y)
            _assert_agrees(f"{case.label} chunk={chunk}", got, sources, TOL_ANALYTIC_F64)


def test_one_pass_mlp_gradient_float32_within_the_model_bound():
    case = make_model_case("two_layer", "document", 0)
    _, params, x, sources = _sources(case, np.float32)
    model = MODELS["two_layer"](**case.config)
    got = jax.jit(fused.mlp_one_pass_value_and_grad(model, chunk=3))(params, x, case.y)
    assert got[1]["W1"].dtype == jnp.float32
    _assert_agrees(case.label + " float32", got, {"numpy": sources["numpy"]}, TOL_ANALYTIC_F32_MODELS)


def test_one_pass_mlp_on_uint8_pixels_equals_the_decoded_floats():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (23, 12)).astype(np.uint8)
    y = rng.integers(0, 4, 23)
    model = MODELS["digits"](**MODEL_VARIANTS["digits"]["small"])
    params = {k: jnp.asarray(v, jnp.float64) for k, v in model.init(jax.random.key(1)).items()}
    shift = rng.random(12) * 100
    reference = value_and_grad(model, "manual")(params, (pixels - shift) / 255.0, y)
    got = fused.mlp_one_pass_value_and_grad(model, chunk=5, shift=shift, scale=255.0)(params, pixels, y)
    _assert_agrees("uint8 pixels", got, {"manual": reference}, TOL_ANALYTIC_F64)


def test_decode_pixels_is_scale_pixels_to_one_rounding():
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    decoded = np.asarray(fused.decode_pixels(pixels, 0.0, 255.0))
    assert decoded.dtype == np.float32
    np.testing.assert_allclose(decoded, scale_pixels(pixels), rtol=np.finfo(np.float32).eps, atol=0)


def test_one_pass_rejects_other_models():
    with pytest.raises(ValueError, match="not one of"):
        fused.mlp_one_pass_value_and_grad(MODELS["conv"]())


# ----------------------------------------------------------------------------- conv-ReLU-pool

#: (N, C, H, W, F, HH, WW, pad, pool): square and non-square kernels, pad 0-2, pool 2 and 3,
#: conv outputs that the pool grid does not cover exactly, C > 1, a single image.
LAYER_GEOMETRIES = [
    (2, 1, 8, 8, 3, 3, 3, 1, 2),
    (1, 2, 7, 9, 2, 2, 3, 0, 3),
    (3, 3, 6, 5, 2, 3, 2, 2, 2),
    (2, 2, 9, 9, 4, 1, 1, 0, 2),
    (2, 1, 5, 6, 2, 3, 3, 1, 1),
]


def _chain_grads(x, w, b, pad, pool, dout):
    """The three ops chained in manual mode (the hand-written backwards)."""
    z, c1 = conv_forward(x, w, b, 1, pad)
    a, c2 = relu_forward(z)
    out, c3 = max_pool_forward(a, pool, pool, pool)
    dx, dw, db = conv_backward(relu_backward(max_pool_backward(dout, c3), c2), c1)
    return out, (dx, dw, db)


def _numpy_chain(x, w, b, pad, pool, dout):
    z, c1 = npl.conv_forward(x, w, b, 1, pad)
    a, c2 = npl.relu_forward(z)
    out, c3 = npl.max_pool_forward(a, pool, pool, pool)
    return out, npl.conv_backward(npl.relu_backward(npl.max_pool_backward(dout, c3), c2), c1)


@pytest.mark.parametrize("stress", [False, True], ids=["ordinary", "stress"])
@pytest.mark.parametrize("geometry", LAYER_GEOMETRIES, ids=lambda g: "x".join(map(str, g)))
def test_conv_relu_pool_layer_matches_the_chained_ops(geometry, stress):
    n, c, h, wd, f, hh, ww, pad, pool = geometry
    for seed in SEEDS:
        rng = np.random.default_rng([seed, 7])
        if stress:  # exact zeros into ReLU and tied maxima in pool windows
            x = rng.integers(-2, 3, (n, c, h, wd)).astype(np.float64)
            w = rng.integers(-1, 2, (f, c, hh, ww)).astype(np.float64)
            b = np.zeros(f)
        else:
            x, w, b = rng.standard_normal((n, c, h, wd)), rng.standard_normal((f, c, hh, ww)), rng.standard_normal(f)
        out, cache = jax.jit(fused.conv_relu_pool_forward, static_argnums=(3, 4))(x, w, b, pad, pool)
        dout = rng.standard_normal(out.shape)
        got = jax.jit(fused.conv_relu_pool_backward)(dout, cache)
        ref_out, ref = jax.jit(_chain_grads, static_argnums=(3, 4))(x, w, b, pad, pool, dout)
        np_out, np_ref = _numpy_chain(x, w, b, pad, pool, dout)
        auto = jax.jit(jax.grad(lambda x, w, b: jnp.sum(_chain_grads(x, w, b, pad, pool, dout)[0] * dout),
                                argnums=(0, 1, 2)))(x, w, b)
        checks = [compare_arrays("out", "fused", out, "ops", ref_out, TOL_ANALYTIC_F64),
                  compare_arrays("out", "fused", out, "numpy", np_out, TOL_ANALYTIC_F64)]
        for name, theirs in (("manual", ref), ("autodiff", auto), ("numpy", np_ref)):
            checks += [compare_arrays(p, "fused", g, name, r, TOL_ANALYTIC_F64)
                       for p, g, r in zip(("x", "w", "b"), got, theirs)]
        bad = [str(chk) for chk in checks if not chk.ok]
        assert not bad, f"{geometry} seed={seed} stress={stress}:\n" + "\n".join(bad)


@pytest.mark.parametrize("stress", [False, True], ids=["ordinary", "stress"])
@pytest.mark.parametrize("variant", ["document", "small"])
def test_fused_conv_net_gradient_matches_every_mode_and_numpy(variant, stress):
    for seed in SEEDS:
        case = make_model_case("conv", variant, seed, stress)
        model, params, x, sources = _sources(case)
        got = jax.jit(fused.conv_net_value_and_grad(model))(params, x, case.y)
        _assert_agrees(case.label, got, sources, TOL_ANALYTIC_F64)


def test_fused_conv_net_float32_and_uint8_pixels():
    case = make_model_case("conv", "document", 0)
    _, params, _, _ = _sources(case, np.float32)
    model = conv_net()
    pixels = np.random.default_rng(0).integers(0, 256, (4, 1, 28, 28)).astype(np.uint8)
    reference = npm.conv_net().loss_and_grads(case.params, pixels / 255.0, case.y)
    got = jax.jit(fused.conv_net_value_and_grad(model, scale=255.0))(params, pixels, case.y)
    assert got[1]["W1"].dtype == jnp.float32
    _assert_agrees("conv uint8 float32", got, {"numpy": reference}, TOL_ANALYTIC_F32_MODELS)


def test_fused_conv_net_needs_stride_one_and_fast_path_falls_back():
    case = make_model_case("conv", "strided", 0)
    model, params, x, sources = _sources(case)
    with pytest.raises(ValueError, match="stride 1"):
        fused.conv_net_value_and_grad(model)
    got = jax.jit(fused.fast_value_and_grad(model))(params, x, case.y)
    _assert_agrees(case.label + " fallback", got, sources, TOL_ANALYTIC_F64)


@pytest.mark.parametrize("name", list(MODELS))
def test_fast_value_and_grad_matches_manual_for_every_model(name):
    case = make_model_case(name, "small", 3)
    model, params, x, sources = _sources(case)
    for full_batch in (False, True):
        got = jax.jit(fused.fast_value_and_grad(model, full_batch=full_batch))(params, x, case.y)
        _assert_agrees(f"{case.label} full_batch={full_batch}", got, sources, TOL_ANALYTIC_F64)


# ----------------------------------------------------------------------------- fused steps

MODEL = two_layer_net(input_size=12, hidden_size=7, num_classes=3, std=0.1, reg=0.05)


def _data(n=40):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, 12))
    return x, np.argmax(x @ rng.standard_normal((12, 3)), axis=1).astype(np.int32)


def test_fused_full_batch_steps_are_gradient_descent_steps():
    x, y = _data()
    params = {k: jnp.asarray(v, jnp.float64) for k, v in MODEL.init(jax.random.key(0)).items()}
    grad_fn = value_and_grad(MODEL, "manual")
    expected, losses = dict(params), []
    for _ in range(4):
        loss, g = grad_fn(expected, x, y)
        losses.append(float(loss))
        expected = {k: expected[k] - 0.3 * g[k] for k in expected}
    opt = optax.sgd(0.3)
    start = {k: jnp.array(v, copy=True) for k, v in params.items()}
    got, _, got_losses = fused.fused_steps(grad_fn, opt, 4)(start, opt.init(start), x, y, jax.random.key(0), 0)
    for k in expected:
        c = compare_arrays(k, "fused", got[k], "loop", expected[k], TOL_ANALYTIC_F64)
        assert c.ok, str(c)
    np.testing.assert_allclose(np.asarray(got_losses), losses, rtol=TOL_ANALYTIC_F64)


def test_fused_minibatch_steps_reproduce_jaxnets_train():
    """Same optimiser, same with-replacement draws per step: the parameters of jaxnets.train."""
    x, y = _data()
    params = {k: jnp.asarray(v, jnp.float64) for k, v in MODEL.init(jax.random.key(0)).items()}
    config = TrainConfig(mode="manual", learning_rate=0.2, iterations=6, batch_size=8, seed=5, dtype="float64")
    result = train(MODEL, params, (x, y), config, progress=False)
    opt = optax.sgd(0.2)
    start = {k: jnp.array(v, copy=True) for k, v in params.items()}
    run = fused.fused_steps(value_and_grad(MODEL, "manual"), opt, 6, batch_size=8)
    got, _, losses = run(start, opt.init(start), x, y, jax.random.key(5), 0)
    for k in got:
        c = compare_arrays(k, "fused", got[k], "train", result.params[k], TOL_ANALYTIC_F64)
        assert c.ok, str(c)
    np.testing.assert_allclose(np.asarray(losses), result.history["loss"], rtol=TOL_ANALYTIC_F64)
    idx = jax.random.randint(jax.random.fold_in(jax.random.key(5), 3), (8,), 0, 40)
    np.testing.assert_array_equal(np.asarray(idx), np.asarray(sample_batch_indices(jax.random.key(5), 3, 40, 8)))
