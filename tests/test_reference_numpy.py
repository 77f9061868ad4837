"""The NumPy float64 oracle checked against itself: loops vs vectorised code, every backward
vs central finite differences, the subgradient conventions, and the models' gradients."""
import math

import numpy as np
import pytest

from reference_numpy import layers as L
from reference_numpy import naive as N
from reference_numpy import models as M
from reference_numpy.numerical import (
    max_rel_error,
    numerical_gradient,
    numerical_gradient_array,
    rel_error,
)

NAIVE_TOL = 1e-12  # loops and vectorised code differ only in summation order
GRAD_TOL = 1e-7  # analytic vs central differences on kink-free inputs
# Finite-difference step: round-off grows like eps |f| / h and truncation like h^2 |f'''|;
# for these O(1) functions h = 1e-5 keeps both near 1e-11, a 10x margin below GRAD_TOL even
# for small gradient entries. Inputs stay ~1e-3 away from every kink (ReLU 0, max-pool ties).
H = 1e-5


def rng(seed=0):
    return np.random.default_rng(seed)


def assert_close(name, analytic, numeric, tol=GRAD_TOL):
    assert analytic.shape == numeric.shape, f"{name}: shape {analytic.shape} vs {numeric.shape}"
    err, where = max_rel_error(analytic, numeric)
    assert err <= tol, f"{name}: max rel error {err:.3g} at {where} (analytic {analytic[where]}, numeric {numeric[where]})"


def assert_same(name, a, b, tol=NAIVE_TOL):
    assert a.shape == b.shape, f"{name}: shape {a.shape} vs {b.shape}"
    scale = max(1.0, float(np.max(np.abs(a))) if a.size else 1.0)
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    assert err <= tol * scale, f"{name}: max abs difference {err:.3g}"


# ------------------------------------------------------------------------ numerical helpers

def test_rel_error_is_cs231n_formula():
    a = np.array([1.0, 2.0, 0.0])
    b = np.array([1.0, 2.2, 0.0])
    assert rel_error(a, b) == pytest.approx(0.2 / 4.2)
    err, idx = max_rel_error(a, b)
    assert idx == (1,) and err == pytest.approx(0.2 / 4.2)
    assert rel_error(np.zeros(3), np.full(3, 1e-9)) == pytest.approx(1e-9 / 1e-8)


def test_numerical_gradient_restores_input_and_is_exact_on_quadratic():
    x = rng().standard_normal((3, 4))
    x0 = x.copy()
    g = numerical_gradient(lambda v: np.sum(v**2), x)
    np.testing.assert_array_equal(x, x0)
    assert_close("d sum(x^2)", 2 * x, g)
    dout = rng(1).standard_normal((3, 4))
    g = numerical_gradient_array(lambda v: v**3, x, dout)
    np.testing.assert_array_equal(x, x0)
    assert_close("d sum(x^3 dout)", 3 * x**2 * dout, g)


def test_numerical_gradient_rejects_non_float64():
    with pytest.raises(ValueError, match="float64"):
        numerical_gradient(lambda v: v.sum(), np.ones(3, dtype=np.float32))


# ------------------------------------------------------------------------ dense + activations

def test_affine_backward_matches_numerical():
    r = rng(1)
    x, w, b = r.standard_normal((4, 2, 3)), r.standard_normal((6, 5)), r.standard_normal(5)
    out, cache = L.affine_forward(x, w, b)
    assert out.shape == (4, 5)
    dout = r.standard_normal(out.shape)
    dx, dw, db = L.affine_backward(dout, cache)
    assert dx.shape == x.shape
    assert_close("dx", dx, numerical_gradient_array(lambda v: L.affine_forward(v, w, b)[0], x, dout, h=H))
    assert_close("dw", dw, numerical_gradient_array(lambda v: L.affine_forward(x, v, b)[0], w, dout, h=H))
    assert_close("db", db, numerical_gradient_array(lambda v: L.affine_forward(x, w, v)[0], b, dout, h=H))


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
def test_activation_backward_matches_numerical(name):
    fwd, bwd = getattr(L, f"{name}_forward"), getattr(L, f"{name}_backward")
    r = rng(2)
    x = r.standard_normal((5, 7))
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU away from its kink
    out, cache = fwd(x)
    dout = r.standard_normal(out.shape)
    assert_close(f"{name} dx", bwd(dout, cache), numerical_gradient_array(lambda v: fwd(v)[0], x, dout, h=H))


def test_relu_gradient_at_exactly_zero_is_zero():
    x = np.array([[-1.0, 0.0, 1.0], [0.0, 2.0, -0.0]])
    out, cache = L.relu_forward(x)
    np.testing.assert_array_equal(out, [[0, 0, 1], [0, 2, 0]])
    np.testing.assert_array_equal(L.relu_backward(np.ones_like(x), cache), [[0, 0, 1], [0, 1, 0]])


def test_sigmoid_is_stable_for_large_inputs():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out, _ = L.sigmoid_forward(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0])


# ------------------------------------------------------------------------ losses

def test_softmax_loss_gradient_matches_numerical():
    r = rng(3)
    scores, y = r.standard_normal((6, 4)), r.integers(0, 4, 6)
    loss, dscores = L.softmax_loss(scores, y)
    assert_close("dscores", dscores, numerical_gradient(lambda s: L.softmax_loss(s, y)[0], scores, h=H))
    p = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(6), y])), rel=1e-14)


def test_softmax_loss_stable_for_huge_scores():
    r = rng(4)
    base, y = r.standard_normal((5, 10)), r.integers(0, 10, 5)
    with np.errstate(over="raise", invalid="raise"):
        loss, dscores = L.softmax_loss(base + 1e4, y)
        loss_big, _ = L.softmax_loss(base * 1e4, y)
    ref_loss, ref_d = L.softmax_loss(base, y)
    assert loss == pytest.approx(ref_loss, rel=1e-9)
    np.testing.assert_allclose(dscores, ref_d, rtol=1e-7, atol=1e-12)
    assert np.isfinite(loss_big)


def test_softmax_loss_rejects_bad_labels():
    s = np.zeros((3, 4))
    with pytest.raises(ValueError, match="out of range"):
        L.softmax_loss(s, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="out of range"):
        L.softmax_loss(s, np.array([0, -1, 1]))
    with pytest.raises(ValueError, match="shape"):
        L.softmax_loss(s, np.array([0, 1]))
    with pytest.raises(ValueError, match="integers"):
        L.softmax_loss(s, np.array([0.0, 1.0, 2.0]))


@pytest.mark.parametrize("shape", [(7,), (7, 1)])
def test_bce_with_logits_matches_numerical_and_probability_form(shape):
    r = rng(5)
    z = r.standard_normal(shape) * 2
    y = (r.random(shape) > 0.5).astype(float)
    loss, dz = L.binary_cross_entropy_with_logits(z, y)
    assert dz.shape == shape
    assert_close("dz", dz, numerical_gradient(lambda v: L.binary_cross_entropy_with_logits(v, y)[0], z, h=H))
    p, _ = L.sigmoid_forward(z)
    loss_p, dp = L.binary_cross_entropy(p, y)
    assert loss == pytest.approx(loss_p, rel=1e-12)
    assert_close("dp", dp, numerical_gradient(lambda v: L.binary_cross_entropy(v, y)[0], p, h=H))
    # chain rule through the sigmoid gives back the logits gradient (000: dZ2 = A2 - Y)
    assert_close("dp * sigma'", L.sigmoid_backward(dp, p), dz, tol=1e-12)


def test_bce_with_logits_stable_and_zero_logit_gives_ln2():
    loss, _ = L.binary_cross_entropy_with_logits(np.zeros(4), np.array([0.0, 1.0, 1.0, 0.0]))
    assert loss == pytest.approx(math.log(2))  # 000's first cost 0.693147
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, dz = L.binary_cross_entropy_with_logits(np.array([1000.0, -1000.0]), np.array([0.0, 1.0]))
    assert loss == pytest.approx(1000.0) and np.allclose(dz, [0.5, -0.5])


def test_binary_losses_reject_bad_input():
    with pytest.raises(ValueError, match="shape"):
        L.binary_cross_entropy_with_logits(np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        L.binary_cross_entropy(np.array([0.0, 0.5]), np.array([0.0, 1.0]))


def test_l2_penalty_value_and_gradient():
    w = rng(6).standard_normal((3, 4))
    pen, dw = L.l2_penalty(w, 0.3)
    assert pen == pytest.approx(0.15 * np.sum(w**2))
    assert_close("dw", dw, numerical_gradient(lambda v: L.l2_penalty(v, 0.3)[0], w, h=H))


# ------------------------------------------------------------------------ convolution

CONV_CASES = [
    # (x shape, w shape, stride, pad)
    ((2, 3, 5, 5), (4, 3, 3, 3), 1, 1),
    ((1, 1, 6, 6), (2, 1, 3, 3), 2, 0),  # batch 1, drops windows that do not fit
    ((2, 2, 7, 6), (3, 2, 2, 3), 2, 1),  # non-square kernel and input
    ((1, 3, 4, 5), (2, 3, 3, 2), 1, 2),
    ((2, 2, 5, 5), (1, 2, 1, 1), 3, 0),  # stride larger than the kernel
]


@pytest.mark.parametrize("xs, ws, stride, pad", CONV_CASES)
def test_conv_naive_and_vectorised_agree(xs, ws, stride, pad):
    r = rng(7)
    x, w, b = r.standard_normal(xs), r.standard_normal(ws), r.standard_normal(ws[0])
    out, cache = L.conv_forward(x, w, b, stride, pad)
    out_n, cache_n = N.conv_forward_naive(x, w, b, stride, pad)
    ho = (xs[2] + 2 * pad - ws[2]) // stride + 1
    wo = (xs[3] + 2 * pad - ws[3]) // stride + 1
    assert out.shape == (xs[0], ws[0], ho, wo)
    assert_same("conv out", out, out_n)
    dout = r.standard_normal(out.shape)
    for name, g, g_n in zip(("dx", "dw", "db"), L.conv_backward(dout, cache), N.conv_backward_naive(dout, cache_n)):
        assert_same(f"conv {name}", g, g_n)


@pytest.mark.parametrize("xs, ws, stride, pad", CONV_CASES[:3])
def test_conv_backward_matches_numerical(xs, ws, stride, pad):
    r = rng(8)
    x, w, b = r.standard_normal(xs), r.standard_normal(ws), r.standard_normal(ws[0])
    out, cache = L.conv_forward(x, w, b, stride, pad)
    dout = r.standard_normal(out.shape)
    dx, dw, db = L.conv_backward(dout, cache)
    assert dx.shape == x.shape  # padding stripped
    f = lambda x_, w_, b_: L.conv_forward(x_, w_, b_, stride, pad)[0]
    assert_close("dx", dx, numerical_gradient_array(lambda v: f(v, w, b), x, dout, h=H))
    assert_close("dw", dw, numerical_gradient_array(lambda v: f(x, v, b), w, dout, h=H))
    assert_close("db", db, numerical_gradient_array(lambda v: f(x, w, v), b, dout, h=H))


def test_conv_document_000_example_filters():
    """000's two filters: grayscale (0.3, 0.6, 0.1 centre taps) and horizontal edges on channel 2."""
    x = rng(9).random((1, 3, 5, 5))
    w = np.zeros((2, 3, 3, 3))
    w[0, :, 1, 1] = [0.3, 0.6, 0.1]
    w[1, 2] = [[1, 2, 1], [0, 0, 0], [-1, -2, -1]]
    out, _ = L.conv_forward(x, w, np.zeros(2), stride=1, pad=1)
    np.testing.assert_allclose(out[0, 0], 0.3 * x[0, 0] + 0.6 * x[0, 1] + 0.1 * x[0, 2], rtol=1e-14)
    xp = L.zero_pad(x, 1)[0, 2]
    edge = (xp[:-2, :-2] + 2 * xp[:-2, 1:-1] + xp[:-2, 2:]) - (xp[2:, :-2] + 2 * xp[2:, 1:-1] + xp[2:, 2:])
    np.testing.assert_allclose(out[0, 1], edge, rtol=1e-13, atol=1e-15)


def test_zero_pad_and_conv_single_step():
    x = rng(10).standard_normal((2, 3, 4, 5))
    xp = L.zero_pad(x, 2)
    assert xp.shape == (2, 3, 8, 9)
    np.testing.assert_array_equal(xp[:, :, 2:-2, 2:-2], x)
    assert np.all(xp[:, :, :2] == 0) and np.all(xp[:, :, :, -2:] == 0)
    a, w = x[0, :, :3, :3], x[1, :, :3, :3]
    assert N.conv_single_step(a, w, 0.5) == pytest.approx(np.sum(a * w) + 0.5)


def test_conv_rejects_bad_input():
    x, w, b = np.zeros((1, 3, 5, 5)), np.zeros((2, 2, 3, 3)), np.zeros(2)
    for fwd in (L.conv_forward, N.conv_forward_naive):
        with pytest.raises(ValueError, match="channel"):
            fwd(x, w, b)
        with pytest.raises(ValueError, match="stride"):
            fwd(x, np.zeros((2, 3, 3, 3)), b, stride=0)
        with pytest.raises(ValueError, match="larger"):
            fwd(x, np.zeros((2, 3, 7, 3)), b, pad=0)
        with pytest.raises(ValueError, match="b has shape"):
            fwd(x, np.zeros((2, 3, 3, 3)), np.zeros(3))


# ------------------------------------------------------------------------ pooling

POOL_CASES = [
    # (x shape, pool_height, pool_width, stride)
    ((2, 3, 4, 4), 2, 2, 2),
    ((1, 2, 5, 5), 3, 3, 2),  # overlapping windows
    ((2, 1, 5, 6), 2, 2, 1),  # heavily overlapping
    ((1, 2, 7, 7), 2, 3, 3),  # non-square pool, stride larger than pool height
    ((1, 1, 5, 4), 2, 2, 2),  # last row dropped
]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("xs, ph, pw, stride", POOL_CASES)
def test_pool_naive_and_vectorised_agree(kind, xs, ph, pw, stride):
    fwd, bwd = getattr(L, f"{kind}_pool_forward"), getattr(L, f"{kind}_pool_backward")
    fwd_n, bwd_n = getattr(N, f"{kind}_pool_forward_naive"), getattr(N, f"{kind}_pool_backward_naive")
    r = rng(11)
    x = r.standard_normal(xs)
    if kind == "max":
        x = np.round(x, 1)  # plenty of ties: both versions must pick the same (first) maximum
    out, cache = fwd(x, ph, pw, stride)
    out_n, cache_n = fwd_n(x, ph, pw, stride)
    assert out.shape == (xs[0], xs[1], (xs[2] - ph) // stride + 1, (xs[3] - pw) // stride + 1)
    assert_same(f"{kind} pool out", out, out_n)
    dout = r.standard_normal(out.shape)
    assert_same(f"{kind} pool dx", bwd(dout, cache), bwd_n(dout, cache_n))


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("xs, ph, pw, stride", POOL_CASES[:4])
def test_pool_backward_matches_numerical(kind, xs, ph, pw, stride):
    fwd, bwd = getattr(L, f"{kind}_pool_forward"), getattr(L, f"{kind}_pool_backward")
    r = rng(12)
    x = r.permutation(np.prod(xs)).reshape(xs) * 0.1 + r.standard_normal(xs) * 1e-3  # no near ties
    out, cache = fwd(x, ph, pw, stride)
    dout = r.standard_normal(out.shape)
    assert_close(f"{kind} pool dx", bwd(dout, cache), numerical_gradient_array(lambda v: fwd(v, ph, pw, stride)[0], x, dout, h=H))


@pytest.mark.parametrize("naive", [False, True])
def test_max_pool_ties_go_to_first_maximum_and_overlaps_add(naive):
    fwd = N.max_pool_forward_naive if naive else L.max_pool_forward
    bwd = N.max_pool_backward_naive if naive else L.max_pool_backward
    x = np.ones((1, 1, 3, 3))
    out, cache = fwd(x, 2, 2, 1)
    np.testing.assert_array_equal(out, np.ones((1, 1, 2, 2)))
    dx = bwd(np.ones((1, 1, 2, 2)), cache)
    np.testing.assert_array_equal(dx[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    # A tie in one window between a later row and a later column: row-major order decides.
    x = np.array([[[[0.0, 5.0], [5.0, 5.0]]]])
    _, cache = fwd(x, 2, 2, 2)
    np.testing.assert_array_equal(bwd(np.array([[[[3.0]]]]), cache)[0, 0], [[0, 3], [0, 0]])


def test_max_pool_after_relu_dead_window_sends_gradient_to_first_zero():
    a, _ = L.relu_forward(-np.ones((1, 1, 2, 2)))
    out, cache = L.max_pool_forward(a, 2, 2, 2)
    dx = L.max_pool_backward(np.array([[[[2.0]]]]), cache)
    np.testing.assert_array_equal(dx[0, 0], [[2, 0], [0, 0]])


def test_pool_rejects_bad_input():
    x = np.zeros((1, 1, 3, 3))
    for fwd in (L.max_pool_forward, L.avg_pool_forward, N.max_pool_forward_naive, N.avg_pool_forward_naive):
        with pytest.raises(ValueError, match="larger"):
            fwd(x, 4, 2, 1)
        with pytest.raises(ValueError, match="stride"):
            fwd(x, 2, 2, 0)
        with pytest.raises(ValueError, match="4-D"):
            fwd(np.zeros((3, 3)), 2, 2, 1)


def test_backward_rejects_wrong_dout_shape():
    _, cache = L.affine_forward(np.zeros((2, 3)), np.zeros((3, 4)), np.zeros(4))
    with pytest.raises(ValueError, match="dout"):
        L.affine_backward(np.zeros((2, 5)), cache)
    _, cache = L.max_pool_forward(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="dout"):
        L.max_pool_backward(np.zeros((1, 1, 3, 3)), cache)


def test_affine_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="features"):
        L.affine_forward(np.zeros((2, 3)), np.zeros((4, 5)), np.zeros(5))
    with pytest.raises(ValueError, match="b has shape"):
        L.affine_forward(np.zeros((2, 3)), np.zeros((3, 5)), np.zeros(4))


# ------------------------------------------------------------------------ models

def _small_models():
    return [
        (M.occupancy_net(hidden=4), "binary", (6, 5)),
        (M.digits_mlp(hidden=5, input_size=8, num_classes=4), "int4", (6, 8)),
        (M.two_layer_net(input_size=7, hidden_size=6, num_classes=3, std=0.5, reg=0.1), "int3", (5, 7)),
        (M.conv_net(input_shape=(2, 6, 6), num_filters=3, filter_size=3, stride=1, pad=1, pool=2,
                    num_classes=4, reg=0.05), "int4", (3, 2, 6, 6)),
        (M.conv_net(input_shape=(1, 7, 7), num_filters=2, filter_size=2, stride=2, pad=0, pool=2,
                    num_classes=3), "int3", (2, 1, 7, 7)),
    ]


def _labels(kind, n, r):
    if kind == "binary":
        return (r.random(n) > 0.5).astype(float)
    return r.integers(0, int(kind[3:]), n)


@pytest.mark.parametrize("index", range(5))
def test_model_loss_and_grads_match_numerical(index):
    model, kind, xs = _small_models()[index]
    r = rng(20 + index)
    params = model.init(r)
    if model.name == "occupancy":  # 0.01-scale init gives gradients too small for a tight check
        params = {k: v + r.standard_normal(v.shape) for k, v in params.items()}
    x, y = r.standard_normal(xs), _labels(kind, xs[0], r)
    value, grads = model.loss_and_grads(params, x, y)
    assert value == pytest.approx(model.loss(params, x, y), rel=1e-13)
    assert set(grads) == set(params)
    for key, p in params.items():
        num = numerical_gradient(lambda v: model.loss({**params, key: v}, x, y), p, h=H)
        assert_close(f"{model.name} d{key}", grads[key], num)


def test_model_parameter_shapes_and_configs_follow_contract():
    p = M.occupancy_net().init(rng())
    assert {k: v.shape for k, v in p.items()} == {"W1": (5, 5), "b1": (5,), "W2": (5, 1), "b2": (1,)}
    assert np.all(p["W2"] >= 0) and np.all(p["W2"] < 0.01) and not p["b1"].any()
    p = M.digits_mlp().init(rng())
    assert {k: v.shape for k, v in p.items()} == {"W1": (784, 10), "b1": (10,), "W2": (10, 10), "b2": (10,)}
    assert all(np.all((v >= -0.5) & (v < 0.5)) for v in p.values())
    p = M.two_layer_net().init(rng())
    assert {k: v.shape for k, v in p.items()} == {"W1": (784, 50), "b1": (50,), "W2": (50, 10), "b2": (10,)}
    conv = M.conv_net()
    p = conv.init(rng())
    assert {k: v.shape for k, v in p.items()} == {"W1": (8, 1, 3, 3), "b1": (8,), "W2": (8 * 14 * 14, 10), "b2": (10,)}
    assert p["W1"].std() == pytest.approx(math.sqrt(2 / 9), rel=0.3)
    assert conv.config["reg"] == 0.0 and conv.config["input_shape"] == [1, 28, 28]
    assert set(M.MODELS) == {"occupancy", "digits", "two_layer", "conv", "fc_net", "deep_conv", "char_lm", "row_lstm",
                              "transformer_lm"}
    # cs231n's nets: a layer followed by batch norm has no bias (it could not change the output)
    p = M.fc_net((7, 6), input_size=5, num_classes=3, norm="batchnorm").init(rng())
    assert sorted(p) == ["W1", "W2", "W3", "b3", "beta1", "beta2", "gamma1", "gamma2"]
    p = M.deep_conv_net(filters=(4, 6), hidden=5).init(rng())
    assert {k: v.shape for k, v in p.items() if k.startswith("W")} == {
        "W1": (4, 1, 3, 3), "W2": (6, 4, 3, 3), "W3": (6 * 7 * 7, 5), "W4": (5, 10)}
    assert sorted(k for k in p if k.startswith("b")) == ["b4", "beta1", "beta2", "beta3"]
    assert M.two_layer_net().config == {"input_size": 784, "hidden_size": 50, "num_classes": 10, "std": 1e-4, "reg": 0.0}


def test_fresh_two_layer_net_loss_is_ln10():
    """002: the first loss of TwoLayerNet (std = 1e-4) is 2.3027 = ln 10."""
    model = M.two_layer_net(hidden_size=50, reg=0.5)
    r = rng(30)
    params = model.init(r)
    x = r.random((50, 784)) - 0.5  # mean-subtracted pixels in [-0.5, 0.5)
    loss = model.loss(params, x, r.integers(0, 10, 50))
    assert loss == pytest.approx(math.log(10), abs=1e-4)
    assert round(loss, 4) == pytest.approx(2.3026, abs=1.5e-4)  # 002 prints 2.302685 / 2.302719


def test_fresh_occupancy_net_loss_is_ln2():
    """000: cost 0.693147 at iteration 0."""
    model = M.occupancy_net()
    r = rng(31)
    x = r.random((40, 5)) / math.sqrt(40)  # rows of unit-norm-scaled features
    loss = model.loss(model.init(r), x, (r.random(40) > 0.5).astype(float))
    assert loss == pytest.approx(math.log(2), abs=1e-4)


def test_model_predict_shapes_and_rules():
    r = rng(32)
    occ = M.occupancy_net()
    p = occ.init(r)
    x = r.standard_normal((9, 5))
    pred = occ.predict(p, x)
    assert pred.shape == (9,) and np.issubdtype(pred.dtype, np.integer)
    np.testing.assert_array_equal(pred, (occ.scores(p, x) > 0).astype(int))
    conv = M.conv_net(input_shape=(1, 8, 8), num_filters=2)
    p = conv.init(r)
    x = r.standard_normal((3, 1, 8, 8))
    assert conv.scores(p, x).shape == (3, 10)
    np.testing.assert_array_equal(conv.predict(p, x), np.argmax(conv.scores(p, x), axis=1))


def test_reference_numpy_does_not_import_jax():
    import pathlib

    root = pathlib.Path(L.__file__).parent
    for path in root.glob("*.py"):
        text = path.read_text()
        assert "import jax" not in text and "from jax" not in text, path.name
