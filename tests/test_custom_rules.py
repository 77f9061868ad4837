"""`jaxnets.gradcheck.check` on JAX's own custom-derivative objects, as real code writes them
(tests/realcode: JAX's tutorial, jax.nn, jax.scipy.special, a gradient-reversal layer), with
zero adapter lines: correct rules pass (AMBIGUOUS at kinks, a DOMAIN note where the forward
itself overflows), intentional non-derivatives and planted mistakes fail with the right row
and hint."""
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnets.gradcheck import CheckInputError, check
from jaxnets.gradcheck.case import VALUE_KINDS
from jaxnets.conformance.mutants.custom import CUSTOM_MUTANTS

REAL = os.path.join(os.path.dirname(__file__), "realcode")
RNG = np.random.default_rng(0)
FAST = {"cases": 14, "leading_sizes": False}


def real(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REAL, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def failing(report):
    return [k for k, r in report.rows.items() if r.status == "fail"]


@pytest.mark.parametrize("file,name,args", [
    ("tut_sin_times_y_custom_vjp", "f", (RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4)))),
    ("tut_sin_times_y_custom_jvp", "f", (RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4)))),
    ("tut_log1pexp_custom_jvp", "log1pexp", (RNG.standard_normal(5),)),
    ("tut_x_over_1p_sqrtx_custom_jvp", "f", (RNG.uniform(0.5, 2.0, (4, 5)),)),
    ("jax_nn_relu_custom_jvp", "relu", (RNG.standard_normal((3, 4)),)),
    ("jax_scipy_special_xlogy_xlog1py_logit_custom_jvp", "xlogy", (RNG.standard_normal(4), RNG.uniform(0.5, 2, 4))),
])
def test_correct_real_rules_pass_as_written(file, name, args):
    report = check(getattr(real(file), name), *args, **FAST)
    assert report.ok, report.text()
    assert report.kind in ("custom_vjp", "custom_jvp")


def test_the_tutorials_pytree_rules_are_checked_leaf_by_leaf():
    for file in ("tut_point_pytree_custom_vjp", "tut_point_pytree_custom_jvp"):
        module = real(file)
        report = check(module.f, module.Point(1.0, 2.0), **FAST)
        assert report.ok, report.text()
        assert {"pt.x", "pt.y"} <= {w for r in report.rows.values() for f in r.findings for w in [f.param]}


def test_a_custom_jvp_is_checked_in_forward_mode_too():
    report = check(real("tut_sin_times_y_custom_jvp").f, RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4)),
                   **FAST)
    assert {"jvp rule ~ finite differences", "jvp rule ~ autodiff jvp", "forward ~ reverse (dot product)",
            "transposed jvp ~ autodiff"} <= set(report.rows)
    assert all(report.rows[k].status == "pass" for k in report.rows), report.text()


def test_where_autodiff_of_the_primal_is_wrong_finite_differences_decide():
    # xlogy's primal is where-guarded at x = 0: jax.grad of it is 0 there, the rule (and finite
    # differences) give log(y)
    xlogy = real("jax_scipy_special_xlogy_xlog1py_logit_custom_jvp").xlogy
    report = check(xlogy, np.array([0.0, 0.0, 1.5, -2.0]), np.array([0.5, 2.0, 1.5, 3.0]), cases=14,
                   leading_sizes=False)
    assert report.ok, report.text()
    assert "autodiff of your primal is wrong here" in report.text() and "agrees with finite differences" in report.text()


def test_a_convention_at_the_domains_boundary_is_not_a_failure():
    # the tutorial's x / (1 + sqrt(x)) enforces f'(0) = 1; autodiff of the primal is NaN at 0
    report = check(real("tut_x_over_1p_sqrtx_custom_jvp").f, RNG.uniform(0.5, 2.0, (4, 5)), **FAST)
    assert report.ok and any(c.tags["values"] == "boundary" for c in report.cases), report.text()
    boundary = [c for c in report.cases if c.tags["values"] == "boundary"]
    assert any(np.any(c.args[0] == 0) for c in boundary), "cases on the domain's boundary: x = 0"


def test_a_gradient_reversal_layer_fails_with_the_sign_hint():
    report = check(real("google_research_gift_flip_grad_identity_custom_jvp").flip_grad_identity,
                   RNG.standard_normal((3, 4)), **FAST)
    assert not report.ok
    assert any("the sign is flipped" in h for r in report.rows.values() for h in r.hints), report.text()


def test_nondiff_argnums_with_a_function_argument():
    # the tutorial's app(f, x) with nondiff_argnums=(0,): its bwd returns 5 * g on purpose
    report = check(real("tut_nondiff_app_custom_vjp").app, lambda x: x ** 2, 4.0, **FAST)
    assert {"bwd ~ autodiff", "bwd ~ finite differences"} <= set(failing(report)), report.text()


def test_none_cotangents_mean_not_differentiated_and_clipping_is_reported():
    clip = real("tut_clip_gradient_custom_vjp").clip_gradient
    report = check(clip, -0.75, 0.75, RNG.standard_normal((3, 3)) * 3, **FAST)
    assert "bwd returns None for lo, hi: not differentiated" in report.notes["None cotangents"]
    assert not report.ok and "finite differences" in report.text()  # the clipped gradient is not the derivative
    rows = failing(report)
    assert "bwd ~ autodiff" in rows and "bwd ~ finite differences" in rows


def sign_flipped_bwd():
    @jax.custom_vjp
    def f(x):
        return jnp.sin(x)

    f.defvjp(lambda x: (jnp.sin(x), jnp.cos(x)), lambda c, g: (-c * g,))
    return f


def test_a_sign_flipped_rule_fails_every_comparison_not_two_of_three():
    # the old adapter (f.fwd as the forward) made autodiff differentiate the rule itself
    report = check(sign_flipped_bwd(), RNG.standard_normal((3, 4)), **FAST)
    for row in ("bwd ~ autodiff", "custom_vjp ~ autodiff (in context)", "bwd ~ finite differences"):
        assert report.rows[row].status == "fail" and report.rows[row].worst.err > 0.5, report.text()


@pytest.mark.parametrize("m", CUSTOM_MUTANTS, ids=lambda m: m.name)
def test_each_custom_mutant_is_caught_by_its_row_and_its_correct_rule_is_not(m, mutant_scoreboard):
    good = check(m.correct, *m.example, cases=14)
    assert good.ok, good.text()
    bad = check(m.mutant, *m.example, cases=14)
    rows = failing(bad)
    assert any(m.row in r for r in rows), bad.text()
    if m.alone:
        assert len(rows) == 1, f"{m.name} should be caught by {m.row!r} alone, failed: {rows}"


def test_rtol_and_atol_are_knobs_and_the_report_prints_them():
    @jax.custom_vjp
    def attention_like(x):
        return jax.nn.softmax(x, axis=-1)

    def fwd(x):
        p = jax.nn.softmax(x, axis=-1)
        return p, p

    def bwd(p, g):  # its own 1e-10 epsilon, as a published kernel adds: ~1e-10 relative
        s = jnp.sum(g * p, axis=-1, keepdims=True)
        return (p * (g - s) * (1 + 1e-9),)

    attention_like.defvjp(fwd, bwd)
    x = RNG.standard_normal((3, 5))
    strict = check(attention_like, x, **FAST)
    assert not strict.ok and "rtol (analytic) 1e-10" in strict.text()
    loose = check(attention_like, x, rtol=1e-8, **FAST)
    assert loose.ok, loose.text()
    assert "rtol (analytic) 1e-08" in loose.text()


def test_layer_norm_under_an_all_ones_upstream_gradient_passes():
    # the true gradient is exactly 0; both sources are rounding noise of O(1) terms
    from jaxnets import ops

    x, g, b = RNG.standard_normal((4, 6)), RNG.standard_normal(6), RNG.standard_normal(6)
    report = check(lambda x, g, b: ops.layernorm_forward(x, g, b), x, g, b, backward=ops.layernorm_backward, cases=21,
                   leading_sizes=False)
    assert "ones" in {c.tags["upstream"] for c in report.cases}
    assert report.ok, report.text()


def test_bad_input_is_one_line():
    with pytest.raises(CheckInputError) as err:
        check(sign_flipped_bwd())
    assert "no example" in str(err.value)
    with pytest.raises(CheckInputError) as err:
        check(sign_flipped_bwd(), "text")
    assert "\n" not in str(err.value)


def _lookup(assign):
    """An embedding lookup as JAX users write it: bwd returns None for the integer indices."""
    @jax.custom_vjp
    def lookup(W, idx):
        return W[idx]

    def fwd(W, idx):
        return W[idx], (W.shape, idx)

    def bwd(res, g):
        shape, idx = res
        zeros = jnp.zeros(shape, g.dtype)
        return (zeros.at[idx].set(g) if assign else zeros.at[idx].add(g)), None

    lookup.defvjp(fwd, bwd)
    return lookup


def test_a_custom_vjp_with_integer_indices_returning_none_for_them():
    W, idx = np.random.default_rng(0).standard_normal((5, 3)), np.array([0, 2, 2, 4])
    good = check(_lookup(assign=False), W, idx, cases=8, second_order=False)
    assert good.ok, good.text()
    bad = check(_lookup(assign=True), W, idx, cases=8, second_order=False)  # repeated index 2 overwritten
    assert not bad.ok, bad.text()


def _saturated_attention():
    """q, k, v at scale 1000 and a causal mask: scores ~1e6, every softmax row saturated, and
    the first query sees one key only (p = 1, so its gradient is exactly 0)."""
    from jaxnets import ops

    rng = np.random.default_rng(3)
    q, k, v = (1000 * rng.standard_normal(shape) for shape in ((2, 1, 5, 4), (2, 1, 3, 4), (2, 1, 3, 1)))
    mask = np.ones((2, 1, 5, 3), bool)  # with dv = 1, XLA fuses dp = dout * v into ds (a multiply-add)

    def forward(q, k, v, mask):
        return ops.attention_forward(q, k, v, mask, True)

    return forward, ops.attention_backward, (q, k, v, mask)


def test_a_correct_rule_whose_gradient_is_all_rounding_passes_and_a_wrong_one_still_fails(monkeypatch):
    # attention_backward's ds = p * (dp - sum(p * dp)) leaves eps * |dp| * |k| ~ 1e-10 where the
    # true gradient is 0 (autodiff gives 0): relative error 1, at the gradient's own scale. The
    # rule's and autodiff's float32 reruns measure that rounding; without it, this was a false FAIL
    from jaxnets.gradcheck import judges
    from jaxnets.conformance.mutants.attention import attention_backward_without_row_sum

    forward, backward, example = _saturated_attention()
    opts = dict(cases=len(VALUE_KINDS), leading_sizes=False, second_order=False, transforms=False)  # a "large" case
    assert check(forward, *example, backward=backward, **opts).ok
    wrong = check(forward, *example, backward=attention_backward_without_row_sum, **opts)
    assert not wrong.ok
    monkeypatch.setattr(judges, "ROUNDING_FACTOR", 0.0)  # the judgement without the measured rounding
    blind = check(forward, *example, backward=backward, **opts)
    assert not blind.ok, blind.text()
