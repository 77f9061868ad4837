"""Every layout branch of the ops runs on this machine: `jaxnets.ops.layout.forced_layout`
makes the ops trace their CPU or accelerator layout whatever the device, and the equivalence
checks hold in both at the same tolerances (so a mistake in the GPU/TPU branch fails here);
`forced_conv_algorithm` does the same for conv's im2col and convolution-primitive forms."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnets.grads import value_and_grad
from jaxnets.models import MODELS
from jaxnets.models.mlp import CPU_CHUNK
from jaxnets.ops import conv_backward, conv_forward, weight_gradient
from jaxnets.ops.dense import WIDE_INPUT
from jaxnets.ops.layout import (CONV_ALGORITHMS, CONV_PRIMITIVE_MIN_CHANNELS, LAYOUTS, conv_algorithm,
                                forced_conv_algorithm, forced_layout, layout_backend)
from jaxnets.verify import OPS, TOL_ANALYTIC_F64, compare_arrays, compare_op, geometry_pool, make_op_case
from reference_numpy import layers as npl
from reference_numpy import models as npm

# affine: inputs narrower and wider than WIDE_INPUT (the CPU branch's threshold); conv: its
# first two edge geometries (non-square kernels, stride 2 with pad 1, batch 1 with pad 0).
CASES = [("affine", {"x": (3, WIDE_INPUT + 6), "M": 4}), ("affine", {"x": (2, 2, 3), "M": 3})]
CASES += [("conv", g) for g in OPS["conv"].edges[:2]]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_branch_of_the_ops_passes_the_equivalence_checks(layout):
    with forced_layout(layout):
        assert layout_backend() == layout
        failures = [r.summary() for op, g in CASES for stress in (False, True)
                    for r in [compare_op(make_op_case(op, g, seed=7, stress=stress))] if not r.ok]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_of_the_one_pass_mlp_gradient_matches_numpy(layout):
    # more rows than one CPU chunk: the CPU layout loops over chunks, the other takes all rows
    rng = np.random.default_rng(3)
    model = MODELS["two_layer"](input_size=12, hidden_size=7, num_classes=5, reg=0.3)
    params = {k: 0.5 * rng.standard_normal(np.shape(v)) for k, v in model.init(jax.random.key(0)).items()}
    x, y = rng.standard_normal((CPU_CHUNK + 3, 12)), rng.integers(0, 5, CPU_CHUNK + 3)
    with forced_layout(layout):
        loss, grads = jax.jit(value_and_grad(model, "fast"))(params, x, y)
    np_loss, np_grads = npm.MODELS["two_layer"](**model.config).loss_and_grads(params, x, y)
    checks = [compare_arrays("loss", layout, loss, "numpy", np_loss, TOL_ANALYTIC_F64)]
    checks += [compare_arrays(k, layout, grads[k], "numpy", np_grads[k], TOL_ANALYTIC_F64) for k in params]
    assert all(c.ok for c in checks), "\n".join(map(str, checks))


def test_forcing_a_layout_changes_the_traced_program():
    x2, dout = jnp.ones((4, WIDE_INPUT)), jnp.ones((4, 3))
    x, w, b = jnp.ones((2, 3, 5, 5)), jnp.ones((2, 3, 3, 3)), jnp.ones(2)
    programs = {}
    for layout in LAYOUTS:
        with forced_layout(layout):
            # fresh lambdas: a function traced under one layout keeps it
            programs[layout] = (str(jax.make_jaxpr(lambda a, d: weight_gradient(a, d))(x2, dout)),
                                str(jax.make_jaxpr(lambda *a: conv_forward(*a, 1, 1)[0])(x, w, b)))
    assert "optimization_barrier" in programs["cpu"][0] and "optimization_barrier" not in programs["gpu"][0]
    assert programs["cpu"][1] != programs["gpu"][1]
    assert layout_backend() == jax.default_backend()  # the default is untouched outside the block
    with pytest.raises(ValueError, match="backend must be"):
        with forced_layout("cuda"):
            pass


@pytest.mark.parametrize("algorithm", CONV_ALGORITHMS)
def test_both_conv_algorithms_agree_five_ways(algorithm):
    """im2col and the convolution primitive, each forced on every conv edge geometry (the
    suite's geometries have 1-3 channels, below where the primitive is chosen by itself)."""
    with forced_conv_algorithm(algorithm):
        for geometry in geometry_pool("conv")[:4]:
            for seed, stress in ((0, False), (1, True)):
                result = compare_op(make_op_case("conv", geometry, seed, stress))
                assert result.ok, result.summary()


def test_many_channels_take_the_primitive_and_agree_with_numpy():
    assert conv_algorithm(1) == "im2col" and conv_algorithm(CONV_PRIMITIVE_MIN_CHANNELS) == "primitive"
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
    with forced_layout(layout):
        grads = {}
        for mode in ("manual", "autodiff"):
            fn = value_and_grad(model, mode)
            text = str(jax.make_jaxpr(fn)(params, x, y))
            assert ("conv_general_dilated" in text) == (mode == "manual" or layout != "cpu"), (mode, layout)
            grads[mode] = jax.jit(fn)(params, x, y)[1]
    for k in params:
        c = compare_arrays(k, "autodiff", grads["autodiff"][k], "manual", grads["manual"][k], TOL_ANALYTIC_F64)
        assert c.ok, str(c)
