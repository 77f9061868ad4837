"""Every layout branch of the ops runs on this machine: a `jaxnets.ops.Layout` passed to the
ops makes them take their CPU or accelerator forms whatever the device, and the equivalence
checks hold in both at the same tolerances (so a mistake in the GPU/TPU branch fails here);
its `conv` field does the same for conv's im2col and convolution-primitive forms."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnets.grads import mode_layout, value_and_grad
from jaxnets.models import MODELS
from jaxnets.models.mlp import CPU_CHUNK
from jaxnets.ops import conv_backward, conv_forward, weight_gradient
from jaxnets.ops.dense import WIDE_INPUT
from jaxnets.ops.layout import (CONV_ALGORITHMS, CONV_PRIMITIVE_MIN_CHANNELS, LAYOUTS, Layout, check_layout,
                                default_layout)
from jaxnets.conformance import OPS, TOL_ANALYTIC_F64, compare_arrays, compare_op, geometry_pool, make_op_case
from reference_numpy import layers as npl
from reference_numpy import models as npm

# conv: its first two edge geometries (non-square kernels, stride 2 with pad 1, batch 1 with
# pad 0); affine (one form on every backend): inputs narrower and wider than WIDE_INPUT, the
# transposed weight-gradient product's threshold, and a gradient wider than its input (plain).
CASES = [("conv", g) for g in OPS["conv"].edges[:2]]
AFFINE_CASES = [("affine", {"x": (3, WIDE_INPUT + 6), "M": 4}), ("affine", {"x": (2, 2, 3), "M": 3}),
                ("affine", {"x": (3, WIDE_INPUT), "M": WIDE_INPUT + 2})]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_branch_of_the_ops_passes_the_equivalence_checks(layout):
    failures = [r.summary() for op, g in CASES for stress in (False, True)
                for r in [compare_op(make_op_case(op, g, seed=7, stress=stress), layout=Layout(layout))] if not r.ok]
    failures += [r.summary() for op, g in AFFINE_CASES for stress in (False, True)
                 for r in [compare_op(make_op_case(op, g, seed=7, stress=stress))] if not r.ok]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_of_the_one_pass_mlp_gradient_matches_numpy(layout):
    # more rows than one CPU chunk: the CPU layout loops over chunks, the other takes all rows
    rng = np.random.default_rng(3)
    model = MODELS["two_layer"](input_size=12, hidden_size=7, num_classes=5, reg=0.3)
    params = {k: 0.5 * rng.standard_normal(np.shape(v)) for k, v in model.init(jax.random.key(0)).items()}
    x, y = rng.standard_normal((CPU_CHUNK + 3, 12)), rng.integers(0, 5, CPU_CHUNK + 3)
    loss, grads = jax.jit(value_and_grad(model, "fast", layout=Layout(layout)))(params, x, y)
    np_loss, np_grads = npm.MODELS["two_layer"](**model.config).loss_and_grads(params, x, y)
    checks = [compare_arrays("loss", layout, loss, "numpy", np_loss, TOL_ANALYTIC_F64)]
    checks += [compare_arrays(k, layout, grads[k], "numpy", np_grads[k], TOL_ANALYTIC_F64) for k in params]
    assert all(c.ok for c in checks), "\n".join(map(str, checks))


def test_a_layout_is_a_value_that_changes_the_traced_program():
    x, w, b = jnp.ones((2, 3, 5, 5)), jnp.ones((2, 3, 3, 3)), jnp.ones(2)
    programs = {layout: str(jax.make_jaxpr(lambda *a: conv_forward(*a, 1, 1, Layout(layout))[0])(x, w, b))
                for layout in LAYOUTS}
    assert programs["cpu"] != programs["gpu"]
    # the same function object, traced with either layout as a static argument: no state
    # outside the argument decides the branch
    fn = jax.jit(lambda x, w, b, layout: conv_forward(x, w, b, 1, 1, layout)[0], static_argnums=3)
    text = {layout: fn.trace(x, w, b, Layout(layout)).jaxpr.pretty_print() for layout in LAYOUTS}
    assert text["cpu"] != text["gpu"]
    assert default_layout() == Layout(jax.default_backend())
    assert "optimization_barrier" in str(jax.make_jaxpr(weight_gradient)(jnp.ones((4, WIDE_INPUT)), jnp.ones((4, 3))))
    # a gradient wider than its input (an LSTM's dWh) is fast as the plain product
    wide = jnp.ones((4, 4 * WIDE_INPUT))
    assert "optimization_barrier" not in str(jax.make_jaxpr(weight_gradient)(jnp.ones((4, WIDE_INPUT)), wide))
    with pytest.raises(ValueError, match="backend must be"):
        check_layout(Layout("cuda"))
    with pytest.raises(ValueError, match="conv must be"):
        conv_forward(x, w, b, 1, 1, Layout("cpu", "fft"))


@pytest.mark.parametrize("algorithm", CONV_ALGORITHMS)
def test_both_conv_algorithms_agree_five_ways(algorithm):
    """im2col and the convolution primitive, each forced on every conv edge geometry (the
    suite's geometries have 1-3 channels, below where the primitive is chosen by itself)."""
    for geometry in geometry_pool("conv")[:4]:
        for seed, stress in ((0, False), (1, True)):
            result = compare_op(make_op_case("conv", geometry, seed, stress), layout=Layout("cpu", algorithm))
            assert result.ok, result.summary()


def test_many_channels_take_the_primitive_and_agree_with_numpy():
    layout = Layout("cpu")
    assert layout.conv_algorithm(1) == "im2col" and layout.conv_algorithm(CONV_PRIMITIVE_MIN_CHANNELS) == "primitive"
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 8, 6, 5)), rng.standard_normal((3, 8, 3, 2)), rng.standard_normal(3)
    out, cache = conv_forward(x, w, b, 2, 1)
    dout = rng.standard_normal(out.shape)
    ref_out, ref_cache = npl.conv_forward(x, w, b, 2, 1)
    for name, got, want in zip(("out", "dx", "dw", "db"), (out, *conv_backward(dout, cache)),
                               (ref_out, *npl.conv_backward(dout, ref_cache))):
        c = compare_arrays(name, "primitive", got, "numpy", want, TOL_ANALYTIC_F64)
        assert c.ok, str(c)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_autodiff_differentiates_im2col_on_the_cpu_layout_and_agrees_with_manual(layout):
    """In mode autodiff, JAX's rules differentiate conv's im2col form on the CPU layout (its
    derivative of the primitive runs 9x slower there inside lax.scan), the primitive on the
    accelerator layout; either way the gradient equals the hand-written one."""
    # no batch norm: its beta gradients cancel to ~1e-17 here, where relative errors are noise
    model = MODELS["deep_conv"](input_shape=(1, 8, 8), filters=(CONV_PRIMITIVE_MIN_CHANNELS, 3), hidden=5,
                                num_classes=3, batchnorm=False, dropout=0.0)
    params = model.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    x, y = jnp.asarray(rng.standard_normal((6, 1, 8, 8))), jnp.asarray(rng.integers(0, 3, 6))
    assert mode_layout("autodiff", Layout(layout)).conv == ("im2col" if layout == "cpu" else "auto")
    assert mode_layout("manual", Layout(layout)) == Layout(layout)
    grads = {}
    for mode in ("manual", "autodiff"):
        fn = value_and_grad(model, mode, layout=Layout(layout))
        text = str(jax.make_jaxpr(fn)(params, x, y))
        assert ("conv_general_dilated" in text) == (mode == "manual" or layout != "cpu"), (mode, layout)
        grads[mode] = jax.jit(fn)(params, x, y)[1]
    for k in params:
        c = compare_arrays(k, "autodiff", grads["autodiff"][k], "manual", grads["manual"][k], TOL_ANALYTIC_F64)
        assert c.ok, str(c)
