"""Every row of the checker's table has teeth: a planted mistake it catches on its own (the
table cut to that row), while the correct rule passes it; where a row is the only one that
can see a mistake, the test says so and checks that no other row fails."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnets import ops
from jaxnets.gradcheck.api import check_layer, run_check
from jaxnets.conformance.mutants import MUTANTS
from jaxnets.conformance.mutants.custom import CUSTOM_MUTANTS
from jaxnets.gradcheck.oracles import context
from jaxnets.conformance.public_api import mutant_layer
from reference_numpy import layers as npl

RNG = np.random.default_rng(1)
X = RNG.standard_normal((4, 5))
QUICK = {"cases": 14, "leading_sizes": False}


def _custom(name):
    return next(m for m in CUSTOM_MUTANTS if m.name == name)


def _catalogue(name):
    return mutant_layer(next(m for m in MUTANTS if m.name == name))


def only(report):
    return [k for k, r in report.rows.items() if r.status == "fail"]


@pytest.mark.parametrize("name,row", [
    ("custom_vjp_stop_gradient_residual", "second order"),
    ("fixed_point_backward_not_converged", "dot product"),
    ("custom_vjp_bwd_returns_bare_array", "runs, finite"),
    ("custom_jvp_nan_at_boundary", "runs, finite"),
    ("custom_jvp_wrong_at_kink", "jvp rule ~ finite differences"),
    ("custom_jvp_wrong_at_kink", "jvp rule ~ autodiff jvp"),
])
def test_a_custom_rule_row_catches_its_mutant_on_its_own(name, row):
    m = _custom(name)
    assert run_check(m.correct, *m.example, rows=[row], **QUICK).ok
    assert only(run_check(m.mutant, *m.example, rows=[row], **QUICK)), f"{row} alone misses {name}"


@pytest.mark.parametrize("mutant,row", [
    ("tanh_grad_from_preactivation", "backward ~ autodiff"),
    ("tanh_grad_from_preactivation", "backward ~ finite differences"),
    ("tanh_grad_from_preactivation", "custom_vjp ~ autodiff (in context)"),
    ("tanh_grad_from_preactivation", "backward ~ reference"),
    ("tanh_grad_from_preactivation", "forward ~ reverse (dot product)"),
])
def test_a_pair_row_catches_a_catalogue_mistake_on_its_own(mutant, row):
    args = _catalogue(mutant)
    good = check_layer(ops.tanh_forward, ops.tanh_backward, args.examples[:1], reference=args.reference, rows=[row],
                       **QUICK)
    bad = check_layer(args.forward, args.backward, args.examples[:1], reference=args.reference, rows=[row], **QUICK)
    assert good.ok and not bad.ok, (good.text(), bad.text())


def test_forward_against_the_reference_alone_sees_a_loss_off_by_a_constant():
    # the hinge counting the correct class: its gradient is right, its value 1 too high per row
    args = _catalogue("svm_counts_the_correct_class")
    report = check_layer(args.forward, None, args.examples[1:2], reference=args.reference, **QUICK)
    assert only(report) == ["forward ~ reference"], report.text()


def test_a_reference_given_by_the_user_alone_pins_the_convention_at_kinks():
    x = np.array([[0.0, 1.5, -2.0, 0.0], [0.5, -0.0, 2.0, -1.0]])

    def relu_forward(x):
        return jnp.where(x > 0, x, 0.0), x

    def relu_backward_one_at_zero(dout, x):
        return jnp.where(x >= 0, dout, 0.0)

    report = check_layer(relu_forward, relu_backward_one_at_zero, (x,), reference=(npl.relu_forward, npl.relu_backward),
                         **QUICK)
    assert only(report) == ["backward ~ reference"], report.text()  # everything else: ambiguous at the kink


def test_the_in_context_check_needs_its_upstream_gradient_to_be_other_than_one(monkeypatch):
    # a loss whose custom_vjp drops its incoming cotangent is right only where that cotangent is 1
    wiring = next(m for m in MUTANTS if m.name == "loss_vjp_ignores_cotangent")
    obj = wiring.wiring(wiring.fn)
    scores, y = RNG.standard_normal((4, 5)), np.array([0, 3, 1, 4])
    assert only(run_check(obj, scores, y, rows=["in context"], **QUICK)) == ["custom_vjp ~ autodiff (in context)"]
    draw = context.draw

    def upstream_one(ctx, rng):
        maps, r1, r2 = draw(ctx, rng)
        return maps, [np.ones_like(r) for r in r1], [np.zeros_like(r) for r in r2]

    monkeypatch.setattr(context, "draw", upstream_one)
    assert run_check(obj, scores, y, rows=["in context"], **QUICK).ok, "with an upstream of 1 the mistake hides"


@jax.custom_vjp
def sin_two_paths(x):
    return jnp.sin(x)


def _two_paths_bwd(x, g):
    # the mistake: a path taken only when not traced (a debugging branch, a NumPy fallback)
    traced = isinstance(g, jax.core.Tracer)
    return (g * jnp.cos(x) * (1.0 if traced else 1.5),)


sin_two_paths.defvjp(lambda x: (jnp.sin(x), x), _two_paths_bwd)


def test_jit_against_eager_sees_a_rule_that_takes_another_path_when_not_traced():
    # every other row runs the rule jitted, where it is right; only the eager call differs
    report = run_check(sin_two_paths, X, cases=7, leading_sizes=False)
    assert only(report) == ["bwd: jit ~ eager"], report.text()


def batch_one_special_backward(dout, x):
    scale = 2.0 if dout.shape[0] == 1 else 1.0  # the mistake: a batch of one treated specially
    return dout * scale * (1 - jnp.tanh(x) ** 2)


def test_vmap_against_the_batch_sees_a_rule_that_depends_on_the_batch_size():
    report = check_layer(lambda x: (jnp.tanh(x), x), batch_one_special_backward, (X,), cases=7, leading_sizes=False,
                         second_order=False, rows=["vmap"])
    assert only(report) == ["backward: vmap ~ batch"], report.text()
