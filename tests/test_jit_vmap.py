"""Every gradient mode under `jit` and `vmap`: jitted results equal eager ones, and
per-example gradients (vmap over examples of the gradient of a one-example batch) equal a
Python loop over the examples and the NumPy reference."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnets.grads import value_and_grad
from jaxnets.models import MODELS
from jaxnets.conformance import (JAX_MODES, MODEL_SPECS, MODEL_VARIANTS, OP_NAMES, OPS, TOL_ANALYTIC_F64, compare_arrays, geometry_pool, make_model_case, make_op_case, op_gradient_fn)
from reference_numpy import models as npm

MODEL_NAMES = list(MODELS)
VMAP_BATCH = 3


def _assert_same(label, a, b, tol=TOL_ANALYTIC_F64, scale_floor=None, scale=None):
    c = compare_arrays(label, "vmap/jit", a, "loop/eager", b, tol, scale_floor=scale_floor, scale=scale)
    assert c.ok, str(c)


#: a small configuration of every model whose rows are independent (no batch norm) and whose
#: loss is deterministic (no dropout): a per-example gradient is then meaningful
VMAP_VARIANTS = {"occupancy": "small", "digits": "small", "two_layer": "small", "conv": "small",
                 "fc_net": "layernorm", "deep_conv": "plain", "char_lm": "lstm", "row_lstm": "gru",
                 "transformer_lm": "tiny"}


def test_every_model_is_checked_under_vmap():
    assert set(MODEL_NAMES) == set(VMAP_VARIANTS) == set(MODEL_VARIANTS)


@pytest.mark.parametrize("mode", JAX_MODES)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_per_example_gradients_under_vmap_match_a_loop(name, mode):
    case = make_model_case(name, VMAP_VARIANTS[name], seed=5)
    vg = value_and_grad(MODELS[name](**case.config), mode)
    params = {k: jnp.asarray(v) for k, v in case.params.items()}

    def one_example(xi, yi):
        return vg(params, xi[None], yi[None])

    losses, grads = jax.jit(jax.vmap(one_example))(case.x, case.y)
    single = jax.jit(vg)
    np_model = npm.MODELS[name](**case.config)
    for i in range(case.x.shape[0]):
        loss_i, grads_i = single(params, case.x[i : i + 1], case.y[i : i + 1])
        np_loss, np_grads = np_model.loss_and_grads(case.params, case.x[i : i + 1], case.y[i : i + 1])
        _assert_same(f"{name}/{mode} example {i} loss", losses[i], loss_i)
        _assert_same(f"{name}/{mode} example {i} loss vs numpy", losses[i], np_loss)
        # a gradient that is exactly 0 in exact arithmetic (the transformer's key bias) is
        # compared at the model's scale floor of the example's gradient scale, as in the suite
        floor = MODEL_SPECS[name].scale_floor
        scale = max(float(np.max(np.abs(g))) for g in np_grads.values()) if floor else None
        for k in params:
            _assert_same(f"{name}/{mode} example {i} d{k}", grads[k][i], grads_i[k], scale_floor=floor, scale=scale)
            _assert_same(f"{name}/{mode} example {i} d{k} vs numpy", grads[k][i], np_grads[k], scale_floor=floor,
                         scale=scale)


# Eager runs compile every primitive separately (seconds per model), so only the two MLP
# code paths run eagerly (two_layer shares digits' _mlp); the conv net's layers are compared
# eagerly one op at a time below, and the jitted conv net against NumPy everywhere else.
@pytest.mark.parametrize("name,variant", [("occupancy", "small"), ("digits", "small")])
def test_model_gradients_under_jit_equal_eager(name, variant):
    case = make_model_case(name, variant, seed=5)
    params = {k: jnp.asarray(v) for k, v in case.params.items()}
    for mode in JAX_MODES:
        vg = value_and_grad(MODELS[name](**case.config), mode)
        eager_loss, eager_grads = vg(params, case.x, case.y)
        jit_loss, jit_grads = jax.jit(vg)(params, case.x, case.y)
        _assert_same(f"{name}/{mode} loss", jit_loss, eager_loss)
        for k in params:
            _assert_same(f"{name}/{mode} d{k}", jit_grads[k], eager_grads[k])


def _stacked_op_cases(op):
    geometry = geometry_pool(op)[0]
    cases = [make_op_case(op, geometry, seed, stress) for seed, stress in ((0, False), (1, True), (2, False))]
    spec = OPS[op]
    arrays = tuple(np.stack([c.arrays[k] for c in cases]) for k in range(len(spec.params)))
    if spec.kind == "layer":
        aux = np.stack([c.dout for c in cases])
        static = cases[0].extras
    else:
        aux = tuple(np.stack([np.asarray(c.extras[k]) for c in cases]) for k in range(len(cases[0].extras)))
        static = ()
    return cases, arrays, aux, static


def _aux(case):
    return case.dout if OPS[case.op].kind == "layer" else tuple(case.extras)


@pytest.mark.parametrize("op", [op for op in OP_NAMES if OPS[op].n_out == 1 and not OPS[op].no_grad])
def test_op_modes_under_vmap_match_a_loop(op):
    cases, arrays, aux, static = _stacked_op_cases(op)
    for mode in JAX_MODES:
        f = op_gradient_fn(op, mode, static)
        values, grads = jax.jit(jax.vmap(f))(arrays, aux)
        for i, case in enumerate(cases):
            value_i, grads_i = jax.jit(op_gradient_fn(op, mode, static))(case.arrays, _aux(case))
            _assert_same(f"{op}/{mode} case {i} value", values[i], value_i)
            for k, (g, gi) in enumerate(zip(grads, grads_i)):
                _assert_same(f"{op}/{mode} case {i} d{OPS[op].params[k]}", g[i], gi)


@pytest.mark.parametrize("op", [op for op in OP_NAMES if OPS[op].n_out == 1 and not OPS[op].no_grad])
def test_op_modes_under_jit_equal_eager(op):
    pool = geometry_pool(op)
    geometry = min(pool, key=lambda g: repr(g) if op not in ("conv",) else g["HH"] * g["WW"])
    case = make_op_case(op, geometry, seed=4, stress=True)
    static = case.extras if OPS[op].kind == "layer" else ()
    for mode in JAX_MODES:
        f = op_gradient_fn(op, mode, static)
        eager = f(case.arrays, _aux(case))
        jitted = jax.jit(f)(case.arrays, _aux(case))
        _assert_same(f"{op}/{mode} value", jitted[0], eager[0])
        for k, (a, b) in enumerate(zip(jitted[1], eager[1])):
            _assert_same(f"{op}/{mode} d{OPS[op].params[k]}", a, b)
