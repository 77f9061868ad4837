"""Every op's gradient five ways — manual, autodiff, custom_vjp, NumPy, finite differences —
on hypothesis-drawn geometries, seeds and stress inputs (kinks and ties on purpose).

Each hypothesis example picks a geometry from the op's pool (edge cases + seeded draws, see
jaxnets.conformance), a seed and a stress flag; one XLA compilation per pool geometry.
JAXNETS_OP_EXAMPLES sets the examples per op (default 200).
"""
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxnets.conformance.specs import SEQUENCE_OPS
from jaxnets.conformance import (ANALYTIC, KINK_MARGIN, OP_NAMES, OPS, TOL_ANALYTIC_F32, TOL_ANALYTIC_F64, compare_arrays, compare_op, geometry_pool, hand_op_case, op_sources, make_op_case)

OP_EXAMPLES = int(os.environ.get("JAXNETS_OP_EXAMPLES", "200"))
# the sequence layers (an LSTM over 20 steps, a transformer block) cost a compilation per
# geometry of seconds each: fewer examples, their edge geometries always (below)
SEQUENCE_EXAMPLES = max(1, OP_EXAMPLES // 20)
CLASSIC_OPS = [op for op in OP_NAMES if op not in SEQUENCE_OPS]
F32_EXAMPLES = max(1, OP_EXAMPLES // 5)
F32_GEOMETRIES = 5  # float32 compiles a second time per geometry: a subset of the pool
# Geometries drawn freely from the op's whole space (not the pool): each costs a compilation.
FREE_GEOMETRY_EXAMPLES = int(os.environ.get("JAXNETS_FREE_GEOMETRY_EXAMPLES", "4"))
EDGE_SEED = 2024


def _draw_case(data, op, geometries, stress_allowed=True):
    geometry = data.draw(st.sampled_from(geometries), label="geometry")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    stress = data.draw(st.booleans(), label="stress") if stress_allowed else False
    return make_op_case(op, geometry, seed, stress)


@pytest.mark.parametrize("op", CLASSIC_OPS)
@settings(max_examples=OP_EXAMPLES)
@given(data=st.data())
def test_op_gradients_agree_float64(op, data):
    """manual = autodiff = custom_vjp = NumPy within 1e-10, and = finite differences within
    1e-6 on kink-free inputs."""
    case = _draw_case(data, op, geometry_pool(op))
    result = compare_op(case)
    assert result.ok, result.summary()


@pytest.mark.parametrize("op", list(SEQUENCE_OPS))
@settings(max_examples=SEQUENCE_EXAMPLES)
@given(data=st.data())
def test_sequence_op_gradients_agree_float64(op, data):
    """The same for the sequence layers, on fewer drawn examples (their edges run below)."""
    case = _draw_case(data, op, geometry_pool(op))
    result = compare_op(case)
    assert result.ok, result.summary()


@pytest.mark.parametrize("op", OP_NAMES)
def test_every_edge_geometry_is_checked_with_and_without_stress(op):
    """The edge geometries (non-square kernels and pools, stride != pool size, (N, 1) logits,
    batch 1, ...) catch mistakes the random draws may miss: every run checks each of them,
    ordinary and stressed (kinks, ties), whatever hypothesis draws above."""
    edges = OPS[op].edges
    assert edges, f"{op} has no edge geometries"
    failures = [r.summary() for g in edges for stress in (False, True)
                for r in [compare_op(make_op_case(op, g, EDGE_SEED, stress))] if not r.ok]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("op", CLASSIC_OPS)
@settings(max_examples=FREE_GEOMETRY_EXAMPLES)
@given(data=st.data())
def test_op_gradients_agree_on_free_geometries(op, data):
    """As above, with hypothesis drawing the shapes, strides, pads and pool sizes themselves."""
    geometry = OPS[op].draw_geometry(lambda label, lo, hi: data.draw(st.integers(lo, hi), label=label))
    case = make_op_case(op, geometry, data.draw(st.integers(0, 2**32 - 1), label="seed"),
                        data.draw(st.booleans(), label="stress"))
    result = compare_op(case)
    assert result.ok, result.summary()


@pytest.mark.parametrize("op", CLASSIC_OPS)
@settings(max_examples=F32_EXAMPLES)
@given(data=st.data())
def test_op_gradients_agree_float32(op, data):
    """The JAX modes in float32 agree with each other and with float64 NumPy within
    TOL_ANALYTIC_F32 (stress inputs only where float32 is meaningful)."""
    case = _draw_case(data, op, geometry_pool(op)[:F32_GEOMETRIES], OPS[op].stress_in_float32)
    result = compare_op(case, dtype=np.float32)
    assert result.ok, result.summary()


@pytest.mark.parametrize("op", list(SEQUENCE_OPS))
def test_sequence_ops_agree_in_float32_on_their_edges(op):
    failures = [r.summary() for g in OPS[op].edges
                for r in [compare_op(make_op_case(op, g, EDGE_SEED, False), dtype=np.float32)] if not r.ok]
    assert not failures, "\n".join(failures)


# ----------------------------------------------------------------------------- conventions

def _hand_case(op, arrays, extras, dout):
    return hand_op_case(op, arrays, extras, dout)


def _gradients(case, dtype=np.float64):
    """{source: first gradient} for the four analytic sources (via the checker's own run)."""
    return {m: r[1][0] for m, r in op_sources(case, dtype).items()}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_max_pool_gradient_goes_to_first_maximum_in_every_mode(dtype):
    # window 0: three tied 1s (first at (0, 0)); window 1: tied 0s after a ReLU (first (0, 2));
    # overlapping stride-1 windows below share the tied elements.
    x = np.array([[[[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0]]]])
    case = _hand_case("max_pool", [x], (2, 2, 2), [[[[3.0, 5.0]]]])
    expected = np.zeros_like(x)
    expected[0, 0, 0, 0], expected[0, 0, 0, 2] = 3.0, 5.0
    for source, g in _gradients(case, dtype).items():
        np.testing.assert_array_equal(g, expected, err_msg=f"{source} does not follow the first-maximum rule")

    overlap = _hand_case("max_pool", [x], (2, 2, 1), np.ones((1, 1, 2, 3)))
    grads = _gradients(overlap, dtype)
    for source in ANALYTIC:
        assert compare_arrays("x", source, grads[source], "numpy", grads["numpy"], 0.0).ok, source
    assert grads["numpy"].sum() == 6.0 and grads["numpy"][0, 0, 0, 0] == 1.0  # one element per window


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_gradient_at_zero_is_zero_in_every_mode(dtype):
    x = np.array([[0.0, -0.0, 1e-300 if dtype == np.float64 else 1e-30, -2.0, 3.0]])
    case = _hand_case("relu", [x], (), [[7.0, 7.0, 7.0, 7.0, 7.0]])
    for source, g in _gradients(case, dtype).items():
        np.testing.assert_array_equal(g, [[0.0, 0.0, 7.0, 0.0, 7.0]], err_msg=source)


# ----------------------------------------------------------------------------- the inputs themselves

def _pool_ties(x, ph, pw, s):
    n, c, h, w = x.shape
    ties = 0
    for i in range(0, h - ph + 1, s):
        for j in range(0, w - pw + 1, s):
            win = x[:, :, i : i + ph, j : j + pw].reshape(n, c, -1)
            ties += int(np.sum(np.sum(win == win.max(axis=-1, keepdims=True), axis=-1) > 1))
    return ties


def test_geometry_pools_cover_the_edge_cases():
    conv = geometry_pool("conv")
    assert any(g["N"] == 1 for g in conv) and any(g["C"] > 1 for g in conv)
    assert any(g["pad"] == 0 for g in conv) and any(g["pad"] > 0 for g in conv)
    assert any(g["HH"] != g["WW"] for g in conv) and any(g["stride"] > 1 for g in conv)
    assert any((g["H"] + 2 * g["pad"] - g["HH"]) % g["stride"] for g in conv)  # windows that do not fit
    for op in ("max_pool", "avg_pool"):
        pool = geometry_pool(op)
        assert any(g["stride"] < max(g["ph"], g["pw"]) for g in pool), "overlapping windows"
        assert any(g["stride"] != g["ph"] for g in pool) and any(g["ph"] != g["pw"] for g in pool)
        assert any(g["N"] == 1 for g in pool) and any(g["C"] > 1 for g in pool)
    assert any(len(g["x"]) > 2 for g in geometry_pool("affine")), "(N, d1, d2, ...) inputs"
    for op in OP_NAMES:
        pool = geometry_pool(op)
        assert len(pool) == len({repr(g) for g in pool}), f"{op}: duplicate geometries"


def test_stress_inputs_contain_kinks_and_ties():
    relu = [make_op_case("relu", g, seed, True) for g in geometry_pool("relu") for seed in range(3)]
    zeros = [int(np.sum(c.arrays[0] == 0.0)) for c in relu]
    assert sum(zeros) > 20 and sum(z > 0 for z in zeros) > len(relu) / 2, "exact zeros into the ReLU"
    assert any(np.any(np.signbit(c.arrays[0]) & (c.arrays[0] == 0.0)) for c in relu), "and -0.0"
    ties = sum(_pool_ties(c.arrays[0], *c.extras)
               for g in geometry_pool("max_pool") for c in [make_op_case("max_pool", g, 0, True)])
    assert ties > 20, "stress inputs should tie within pool windows"
    softmax = make_op_case("softmax_loss", geometry_pool("softmax_loss")[1], 0, True)
    assert np.max(softmax.arrays[0]) > 710  # exp overflows float64 without the max shift


def test_finite_differences_only_on_kink_free_inputs():
    for g in geometry_pool("relu"):
        case = make_op_case("relu", g, 1, False)
        assert case.fd and np.min(np.abs(case.arrays[0])) >= KINK_MARGIN
        assert not make_op_case("relu", g, 1, True).fd
    for g in geometry_pool("max_pool"):
        case = make_op_case("max_pool", g, 1, False)
        vals = np.sort(case.arrays[0].ravel())
        assert case.fd and np.min(np.diff(vals)) >= 2 * KINK_MARGIN
        assert _pool_ties(case.arrays[0], *case.extras) == 0


def test_checker_reports_parameter_error_and_index():
    case = make_op_case("affine", geometry_pool("affine")[1], 0)

    def bad_backward(dout, cache):
        x, w = cache
        dx = (dout @ w.T).reshape(x.shape)
        dw = x.reshape(x.shape[0], -1).T @ dout
        return dx, dw.at[2, 1].multiply(1.5), dout.sum(axis=0)

    result = compare_op(case, impl=bad_backward)
    assert not result.ok
    worst = max(result.failures, key=lambda c: c.err)
    assert worst.param == "w" and worst.index == (2, 1) and worst.err > TOL_ANALYTIC_F64
    assert "manual vs" in result.summary() and "w[2, 1]" in result.summary()
    assert compare_op(case).ok
    assert TOL_ANALYTIC_F32 > TOL_ANALYTIC_F64
