"""The checker on a user's own pair in cs231n's convention — JAX and NumPy pairs, losses,
several outputs, dict parameters, in-place upstream gradients, kinks reported as ambiguous
instead of failed, the worst element, hints, saved and replayed cases, bad input — and the
mutant catalogue through the public API."""
import json

import jax.numpy as jnp
import numpy as np
import pytest

from jaxnets import ops
from jaxnets.conformance import OP_NAMES
from jaxnets.gradcheck import CheckInputError, Options, assert_grads, check, hints, load_case
from jaxnets.gradcheck.api import DEFAULT_CASES, check_layer, run_check
from jaxnets.gradcheck.case import UPSTREAM, VALUE_KINDS
from jaxnets.conformance.mutants import MUTANTS
from jaxnets.conformance.public_api import mutant_layer, op_layer, public_mutant_score
from reference_numpy import layers as npl

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4))
W = RNG.standard_normal((4, 2))
B = RNG.standard_normal(2)
FAST = {"cases": 14, "transforms": False, "leading_sizes": False, "second_order": False}


def relu_forward(x):
    return jnp.where(x > 0, x, 0.0), x


def relu_backward(dout, x):
    return jnp.where(x > 0, dout, 0.0)


def relu_backward_one_at_zero(dout, x):
    return jnp.where(x >= 0, dout, 0.0)


def affine_backward_missing_sum(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout, dout[0]  # db from the first row only


def test_a_correct_jax_layer_passes_every_oracle_and_transform():
    report = check_layer(ops.affine_forward, ops.affine_backward, (X, W, B),
                         reference=(npl.affine_forward, npl.affine_backward))
    assert report.ok and report.status == "pass", report.text()
    assert len(report.cases) == DEFAULT_CASES >= 50
    assert set(report.rows) == {"backward: runs, finite", "backward ~ autodiff", "custom_vjp ~ autodiff (in context)",
                                "backward ~ reference", "forward ~ reference", "backward ~ finite differences",
                                "forward ~ reverse (dot product)", "second order ~ finite differences",
                                "backward: jit ~ eager", "backward: vmap ~ batch"}
    assert all(r.status == "pass" and r.findings for r in report.rows.values())
    assert {c.tags["leading"] for c in report.cases} == {None, 1, 4}, "batch size 1 and N + 1 as well as the example's"
    data = json.loads(report.to_json())
    assert data["status"] == "pass" and data["checks"]["backward ~ autodiff"]["cases"] == DEFAULT_CASES


def test_a_wrong_backward_fails_with_the_worst_element_a_hint_and_a_saved_case(tmp_path):
    report = check_layer(ops.affine_forward, affine_backward_missing_sum, (X, W, B), save_dir=str(tmp_path), **FAST)
    assert not report.ok
    row = report.rows["backward ~ autodiff"]
    worst = row.worst
    assert row.status == "fail" and worst.param == "b" and worst.err > 1e-3
    assert worst.a != worst.b and len(worst.index) == 1
    assert report.rows["backward ~ finite differences"].status == "fail"
    assert row.saved and row.saved.endswith(".npz") and "replay=" in row.rerun
    text = report.text()
    assert "FAIL backward ~ autodiff" in text and "b[" in text and row.saved in text
    case = load_case(row.saved)
    np.testing.assert_array_equal(case.args[0], next(c for c in report.cases if c.index == worst.case).args[0])
    again = check_layer(ops.affine_forward, affine_backward_missing_sum, (X, W, B), replay=row.saved, **FAST)
    assert [c.index for c in again.cases] == [worst.case] and not again.ok
    assert again.rows["backward ~ autodiff"].worst.err == pytest.approx(worst.err)
    with pytest.raises(CheckInputError, match="saved for"):
        check_layer(relu_forward, relu_backward, (X,), replay=row.saved, **FAST)


def test_cases_are_seeded_and_cover_every_kind_and_upstream_and_fail_fast_stops():
    one, two = (check_layer(ops.affine_forward, ops.affine_backward, (X, W, B), seed=3, cases=42).cases
                for _ in range(2))
    assert all(np.array_equal(a.args[0], b.args[0]) for a, b in zip(one, two))
    assert {c.tags["values"] for c in one} == set(VALUE_KINDS) and {c.tags["upstream"] for c in one} == set(UPSTREAM)
    assert any(np.sum(c.args[0] == 0) > 0 for c in one if c.tags["values"] == "zeros")
    assert any(np.max(np.abs(c.args[0])) > 500 for c in one if c.tags["values"] == "large")
    stopped = check_layer(ops.affine_forward, affine_backward_missing_sum, (X, W, B), fail_fast=True, **FAST)
    assert len(stopped.cases) == 1


def numpy_relu_backward_bad(dout, x):
    return dout * (x >= 0) * 2.0


def test_numpy_layers_get_finite_differences_and_no_jax_transforms():
    good = check_layer(npl.affine_forward, npl.affine_backward, (X, W, B), **FAST)
    assert good.ok, good.text()
    assert "backward ~ finite differences" in good.rows
    assert "custom_vjp ~ autodiff (in context)" not in good.rows and "backward: jit ~ eager" not in good.rows
    bad = check_layer(npl.relu_forward, numpy_relu_backward_bad, (X,), **FAST)
    assert bad.rows["backward ~ finite differences"].status == "fail"
    # a JAX twin as reference brings jax.grad of it in
    with_ref = check_layer(npl.relu_forward, numpy_relu_backward_bad, (X,), reference=(relu_forward, relu_backward),
                           **FAST)
    assert with_ref.rows["backward ~ reference autodiff"].status == "fail"


def softmax_missing_1_over_n(scores, y):
    loss, dscores = ops.softmax_loss(scores, y)
    return loss, dscores * scores.shape[0]


def loss_as_a_layer_forward(scores, y):
    return ops.softmax_loss(scores, y)


def ignores_its_upstream_gradient(dloss, dscores):
    return dscores  # right only when dloss == 1, as at the root of jax.grad


def test_loss_layers_in_both_forms():
    scores, y = RNG.standard_normal((4, 5)), np.array([0, 3, 1, 4])
    assert check_layer(ops.softmax_loss, None, (scores, y), reference=npl.softmax_loss, **FAST).ok
    assert check(ops.softmax_loss, scores, y, **FAST).kind == "loss", "a (loss, dscores) function is a loss"
    wrong = check_layer(softmax_missing_1_over_n, None, (scores, y), **FAST)
    assert not wrong.ok
    assert any("batch size N = 4" in h for h in wrong.rows["dscores ~ autodiff"].hints)
    layer_form = check_layer(loss_as_a_layer_forward, ignores_its_upstream_gradient, (scores, y), **FAST)
    assert layer_form.rows["backward ~ autodiff"].status == "fail"
    assert any("upstream" in h for h in layer_form.rows["backward ~ autodiff"].hints)


def test_a_kink_is_ambiguous_not_failed_and_the_convention_is_reported():
    x = np.array([[0.0, 1.5, -2.0, 0.0], [0.5, -0.0, 2.0, -1.0]])
    report = check_layer(relu_forward, relu_backward, (x,), **FAST)
    assert report.ok and report.status == "ambiguous", report.text()
    fd = report.rows["backward ~ finite differences"]
    assert fd.count("ambiguous") > 0 and fd.count("fail") == 0
    assert report.conventions()[("backward ~ finite differences", "left")] > 0  # ReLU'(0) = 0
    assert "ambiguous" in report.text() and "left" in report.text()
    # ReLU'(0) = 1 is another convention: against jax.grad's (0) it is ambiguous, not wrong...
    other = check_layer(relu_forward, relu_backward_one_at_zero, (x,), **FAST)
    assert other.ok and other.rows["backward ~ autodiff"].status == "ambiguous", other.text()
    # ...but a reference the user gives defines the convention, and then it fails
    pinned = check_layer(relu_forward, relu_backward_one_at_zero, (x,), reference=(npl.relu_forward, npl.relu_backward),
                         **FAST)
    assert pinned.rows["backward ~ reference"].status == "fail"


def batch_centre_forward(x):
    return x - jnp.mean(x, axis=0), x.shape[0]


def batch_centre_backward(dout, n):
    return dout - jnp.mean(dout, axis=0)


def test_transforms_run_where_they_apply():
    report = check_layer(batch_centre_forward, batch_centre_backward, (X,), cases=7)
    assert report.ok, report.text()
    assert report.rows["backward: jit ~ eager"].status == "pass"
    assert "backward: vmap ~ batch" not in report.rows and "not independent" in report.notes["vmap"]


# ----------------------------------------------------------------------------- cs231n's conventions

def lstm_like_forward(x, prev_h, prev_c, Wx):
    a = x @ Wx + prev_h
    next_c = prev_c * np.tanh(a)
    next_h = np.tanh(next_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, a, next_c)


def lstm_like_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, a, next_c = cache
    dnext_c += dnext_h * (1 - np.tanh(next_c) ** 2)  # in place, as real solutions write it
    da = dnext_c * prev_c * (1 - np.tanh(a) ** 2)
    return da @ Wx.T, da, dnext_c * np.tanh(a), x.T @ da


def dropout_forward(x, dropout_param):
    np.random.seed(dropout_param["seed"])
    mask = (np.random.rand(*x.shape) < dropout_param["p"]) / dropout_param["p"]
    return x * mask, (dropout_param, mask)


def dropout_backward(dout, cache):
    dropout_param, mask = cache
    return dout * mask


def masked_sum_loss(x, y, mask):
    loss = np.sum(x[mask] ** 2) / x.shape[0] + 0 * y.sum()
    dx = np.where(mask, 2 * x, 0.0) / x.shape[0]
    return loss, dx


def test_several_outputs_dict_parameters_masks_and_in_place_upstream_gradients():
    n, d, h = 3, 4, 5
    args = (RNG.standard_normal((n, d)), RNG.standard_normal((n, h)), RNG.standard_normal((n, h)),
            RNG.standard_normal((d, h)))
    report = check_layer(lstm_like_forward, lstm_like_backward, args, **FAST)
    assert report.ok, report.text()
    assert "upstream gradient in place" in report.notes["in place"], report.notes
    assert len(report.cases[0].cotangent) == 2, "one upstream gradient per output: dnext_h, dnext_c"
    drop = check_layer(dropout_forward, dropout_backward, (X, {"p": 0.5, "mode": "train", "seed": 1}), **FAST)
    assert drop.ok, drop.text()
    json.loads(drop.to_json())  # a dict holding Python values and arrays is JSON-able
    loss = check(masked_sum_loss, RNG.standard_normal((3, 4)), np.arange(3), RNG.random((3, 4)) < 0.5, **FAST)
    assert loss.ok and loss.kind == "loss", loss.text()


def two_grads_for_three(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout


def rejects(x, w, b):
    raise ValueError("w must be square")


@pytest.mark.parametrize("forward,backward,example,message", [
    (ops.affine_forward, two_grads_for_three, (X, W, B), "returned 2 gradient(s), expected 3"),
    (ops.affine_forward, lambda d, c: (d @ c[1].T, d.T @ c[0], d.sum(0)), (X, W, B), "the transposed shape"),
    (rejects, ops.affine_backward, (X, W, B), "rejected example 0 (3x4, 4x2, 2): ValueError: w must be square"),
    (ops.affine_forward, ops.affine_backward, (X * np.nan, W, B), "NaN or inf"),
    (relu_forward, relu_backward, ("not an array",), "forward rejected example 0 ('not an array'): TypeError"),
])
def test_bad_input_is_one_clear_error(forward, backward, example, message):
    with pytest.raises(CheckInputError) as err:
        check_layer(forward, backward, example, **FAST)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_assert_grads_raises_with_the_report():
    assert assert_grads(relu_forward, X, backward=relu_backward, **FAST).ok
    with pytest.raises(AssertionError, match="FAIL backward ~ autodiff"):
        assert_grads(ops.affine_forward, X, W, B, backward=affine_backward_missing_sum, **FAST)


def test_options_are_one_value_and_unknown_ones_are_refused():
    one = check(relu_forward, X, backward=relu_backward, options=Options(cases=5, seed=2))
    two = check(relu_forward, X, backward=relu_backward, cases=5, seed=2)
    assert len(one.cases) == len(two.cases) == 5
    with pytest.raises(CheckInputError, match="unknown option rows"):
        check(relu_forward, X, backward=relu_backward, rows=["autodiff"])


# ----------------------------------------------------------------------------- the catalogue through the public API

def test_every_catalogue_hint_names_a_planted_mutant():
    names = {m.name for m in MUTANTS}
    assert {n for group in hints.CATALOGUE.values() for n in group} <= names


@pytest.mark.parametrize("name", OP_NAMES)
def test_correct_builtin_ops_pass_through_the_public_api(name):
    args = op_layer(name)
    report = check_layer(args.forward, args.backward, args.examples[:1], reference=args.reference, **FAST)
    assert report.ok, report.text()


@pytest.mark.parametrize("kind", ["pair", "custom_vjp"])
def test_mutant_score_through_the_public_api(kind):
    # the first two edge geometries of each op (one is often N = 1, where 1/N is invisible), 8 cases;
    # the report's --public-api run takes them all
    results, score = public_mutant_score(kind=kind, cases=8, examples=2, transforms=False, leading_sizes=False,
                                         second_order=False)
    missed = [r for r in results if not r.caught]
    assert not missed, "\n".join(f"{r.name}: {r.how} {r.detail}" for r in missed)
    assert score.startswith(f"mutants caught {len(MUTANTS)}/{len(MUTANTS)} through the public API")


@pytest.mark.parametrize("name,kind", [
    ("softmax_missing_1_over_n", "batch"), ("l2_gradient_half_reg_w", "factor2"),
    ("bce_with_logits_sign_error", "sign"), ("bias_summed_over_all_axes", "summed_axes"),
    ("avg_pool_not_divided_by_window", "size_factor"),
])
def test_hints_recognise_the_catalogue_mistakes(name, kind):
    mutant = next(m for m in MUTANTS if m.name == name)
    args = mutant_layer(mutant)
    report = check_layer(args.forward, args.backward, args.examples[1:2], cases=2, transforms=False,
                         leading_sizes=False, second_order=False)
    found = [h for r in report.rows.values() for h in r.hints]
    assert any(f"`{hints.CATALOGUE[kind][0]}`" in h for h in found), found
