"""`jaxnets.verify.check_layer`: the five-way engine on a user's own layer — JAX and NumPy
pairs, loss layers, kinks reported as ambiguous instead of failed, the report's worst element,
hints, saved and replayed cases, bad input, and the mutant catalogue through the public API."""
import json

import jax.numpy as jnp
import numpy as np
import pytest

from jaxnets import ops
from jaxnets.verify import (DEFAULT_CASES, OP_NAMES, LayerInputError, assert_layer, check_layer, load_case)
from jaxnets.verify import hints
from jaxnets.verify.builtin_layers import mutant_layer, op_layer, public_mutant_score
from jaxnets.verify.cases import UPSTREAM, VALUE_KINDS, generate
from jaxnets.verify.layer import as_examples, prepare_layer
from jaxnets.verify.mutants import MUTANTS
from reference_numpy import layers as npl

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4))
W = RNG.standard_normal((4, 2))
B = RNG.standard_normal(2)
FAST = {"cases": 12, "transforms": False, "leading_sizes": False}


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
    assert set(report.pairs) == {"backward: runs, finite", "backward ~ autodiff", "custom_vjp ~ autodiff (in context)",
                                 "backward ~ reference", "forward ~ reference", "backward ~ finite differences",
                                 "backward: jit ~ eager", "backward: vmap ~ batch"}
    assert report.oracles["reference_autodiff"].startswith("not run: the forward is not JAX-traceable")
    assert all(p.status == "pass" and p.findings for p in report.pairs.values())
    assert {c.leading for c in report.cases} == {None, 1, 4}, "batch size 1 and N + 1 as well as the example's"
    data = json.loads(report.to_json())
    assert data["status"] == "pass" and data["pairs"]["backward ~ autodiff"]["cases"] == DEFAULT_CASES


def test_a_wrong_backward_fails_with_the_worst_element_a_hint_and_a_saved_case(tmp_path):
    report = check_layer(ops.affine_forward, affine_backward_missing_sum, (X, W, B), save_dir=str(tmp_path), **FAST)
    assert not report.ok
    pair = report.pairs["backward ~ autodiff"]
    worst = pair.worst
    assert pair.status == "fail" and worst.param == "b" and worst.err > 1e-3
    assert worst.a != worst.b and len(worst.index) == 1
    assert report.pairs["backward ~ finite differences"].status == "fail"
    assert pair.saved and pair.saved.endswith(".npz") and "replay=" in pair.rerun
    text = report.text()
    assert "FAIL backward ~ autodiff" in text and "b[" in text and pair.saved in text
    case = load_case(pair.saved)
    np.testing.assert_array_equal(case.arrays[0], next(c for c in report.cases if c.index == worst.case).arrays[0])
    again = check_layer(ops.affine_forward, affine_backward_missing_sum, (X, W, B), replay=pair.saved, **FAST)
    assert [c.index for c in again.cases] == [worst.case] and not again.ok
    assert again.pairs["backward ~ autodiff"].worst.err == pytest.approx(worst.err)


def test_cases_are_seeded_cover_every_kind_and_upstream_and_fail_fast_stops():
    layer = prepare_layer(ops.affine_forward, ops.affine_backward, as_examples((X, W, B)))
    shape = lambda arrays, static: (arrays[0].shape[0], 2)  # noqa: E731
    one, two = (generate(layer, as_examples((X, W, B)), 36, 3, shape) for _ in range(2))
    assert all(np.array_equal(a.arrays[0], b.arrays[0]) and np.array_equal(a.dout, b.dout) for a, b in zip(one, two))
    assert {c.values for c in one} == set(VALUE_KINDS) and {c.upstream for c in one} == set(UPSTREAM)
    assert any(np.sum(c.arrays[0] == 0) > 0 for c in one if c.values == "zeros")
    assert any(np.max(np.abs(c.arrays[0])) > 500 for c in one if c.values == "large")
    stopped = check_layer(ops.affine_forward, affine_backward_missing_sum, (X, W, B), fail_fast=True, **FAST)
    assert len(stopped.cases) == 1


def numpy_relu_backward_bad(dout, x):
    return dout * (x >= 0) * 2.0


def test_numpy_only_layers_get_finite_differences_and_say_why_autodiff_did_not_run():
    good = check_layer(npl.affine_forward, npl.affine_backward, (X, W, B), **FAST)
    assert good.ok, good.text()
    assert set(good.pairs) == {"backward: runs, finite", "backward ~ finite differences"}
    assert good.oracles["autodiff"].startswith("not run: the forward is not JAX-traceable")
    bad = check_layer(npl.relu_forward, numpy_relu_backward_bad, (X,), **FAST)
    assert bad.pairs["backward ~ finite differences"].status == "fail"
    # a JAX twin as reference brings jax.grad back
    with_ref = check_layer(npl.relu_forward, numpy_relu_backward_bad, (X,), reference=(relu_forward, relu_backward),
                           **FAST)
    assert with_ref.pairs["backward ~ reference autodiff"].status == "fail"


def softmax_missing_1_over_n(scores, y):
    loss, dscores = ops.softmax_loss(scores, y)
    return loss, dscores * scores.shape[0]


def svm_like_forward(scores, y):
    loss, dscores = ops.softmax_loss(scores, y)
    return loss, dscores


def ignores_its_upstream_gradient(dloss, dscores):
    return dscores  # right only when dloss == 1, as at the root of jax.grad


def test_loss_layers_in_both_forms():
    scores, y = RNG.standard_normal((4, 5)), np.array([0, 3, 1, 4])
    assert check_layer(ops.softmax_loss, None, (scores, y), reference=npl.softmax_loss, **FAST).ok
    wrong = check_layer(softmax_missing_1_over_n, None, (scores, y), **FAST)
    assert not wrong.ok
    assert any("batch size N = 4" in h for h in wrong.pairs["backward ~ autodiff"].hints)
    # a loss written as a layer pair: the backward must use its upstream cotangent
    layer_form = check_layer(svm_like_forward, ignores_its_upstream_gradient, (scores, y), **FAST)
    assert layer_form.pairs["backward ~ autodiff"].status == "fail"
    assert any("upstream" in h for h in layer_form.pairs["backward ~ autodiff"].hints)


def test_a_kink_is_ambiguous_not_failed_and_the_convention_is_reported():
    x = np.array([[0.0, 1.5, -2.0, 0.0], [0.5, -0.0, 2.0, -1.0]])
    report = check_layer(relu_forward, relu_backward, (x,), **FAST)
    assert report.ok and report.status == "ambiguous", report.text()
    fd = report.pairs["backward ~ finite differences"]
    assert fd.count("ambiguous") > 0 and fd.count("fail") == 0
    assert report.conventions()[("backward ~ finite differences", "left")] > 0  # ReLU'(0) = 0
    assert "ambiguous" in report.text() and "left" in report.text()
    # ReLU'(0) = 1 is another convention: against jax.grad's (0) it is ambiguous, not wrong...
    other = check_layer(relu_forward, relu_backward_one_at_zero, (x,), **FAST)
    assert other.ok and other.pairs["backward ~ autodiff"].status == "ambiguous", other.text()
    # ...but a reference defines the convention, and then it fails
    pinned = check_layer(relu_forward, relu_backward_one_at_zero, (x,), reference=(npl.relu_forward, npl.relu_backward),
                         **FAST)
    assert pinned.pairs["backward ~ reference"].status == "fail"


def batch_centre_forward(x):
    return x - jnp.mean(x, axis=0), x.shape[0]


def batch_centre_backward(dout, n):
    return dout - jnp.mean(dout, axis=0)


def test_transforms_run_where_they_apply():
    report = check_layer(batch_centre_forward, batch_centre_backward, (X,), cases=6)
    assert report.ok, report.text()
    assert report.pairs["backward: jit ~ eager"].status == "pass"
    assert "backward: vmap ~ batch" not in report.pairs and "not independent" in report.notes["vmap"]
    assert "ones" in {c.upstream for c in generate(prepare_layer(batch_centre_forward, batch_centre_backward,
                                                                 as_examples((X,))), as_examples((X,)), 12, 0,
                                                   lambda a, s: a[0].shape)}


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
    (relu_forward, relu_backward, ("not an array",), "numeric array"),
])
def test_bad_input_is_one_clear_error(forward, backward, example, message):
    with pytest.raises(LayerInputError) as err:
        check_layer(forward, backward, example, **FAST)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_assert_layer_raises_with_the_report():
    assert assert_layer(relu_forward, relu_backward, (X,), **FAST).ok
    with pytest.raises(AssertionError, match="FAIL backward ~ autodiff"):
        assert_layer(ops.affine_forward, affine_backward_missing_sum, (X, W, B), **FAST)


# ----------------------------------------------------------------------------- the catalogue through the public API

def test_every_catalogue_hint_names_a_planted_mutant():
    names = {m.name for m in MUTANTS}
    assert {n for group in hints.CATALOGUE.values() for n in group} <= names


@pytest.mark.parametrize("name", OP_NAMES)
def test_correct_builtin_ops_pass_through_the_public_api(name):
    args = op_layer(name)
    report = check_layer(args.forward, args.backward, args.examples[:1], reference=args.reference, **FAST)
    assert report.ok, report.text()


def test_mutant_score_through_the_public_api():
    # the first two edge geometries of each op (the report's --public-api run takes them all)
    results, score = public_mutant_score(cases=12, examples=2, transforms=False, leading_sizes=False)
    missed = [r for r in results if not r.caught]
    assert not missed, "\n".join(f"{r.name}: {r.how} {r.detail}" for r in missed)
    assert score == f"mutants caught {len(MUTANTS)}/{len(MUTANTS)} through check_layer"
    by_name = {r.name: r for r in results}
    assert by_name["affine_transposed_dw"].how == "bad input" and "transposed" in by_name["affine_transposed_dw"].detail


@pytest.mark.parametrize("name,kind", [
    ("softmax_missing_1_over_n", "batch"), ("l2_gradient_half_reg_w", "factor2"),
    ("bce_with_logits_sign_error", "sign"), ("bias_summed_over_all_axes", "summed_axes"),
    ("avg_pool_not_divided_by_window", "size_factor"),
])
def test_hints_recognise_the_catalogue_mistakes(name, kind):
    mutant = next(m for m in MUTANTS if m.name == name)
    args = mutant_layer(mutant)
    report = check_layer(args.forward, args.backward, args.examples[1:2], cases=2, transforms=False,
                         leading_sizes=False)
    found = [h for p in report.pairs.values() for h in p.hints]
    assert any(f"`{hints.CATALOGUE[kind][0]}`" in h for h in found), found
