"""The suite's power: each planted gradient bug (SPEC.md's errata and classic backprop slips)
is flagged by the same checker the equivalence tests use, and the correct functions pass it."""
import pytest

from jaxnets.conformance import mutants as M


@pytest.mark.parametrize("op", sorted({m.op for m in M.MUTANTS}))
def test_correct_functions_pass_the_mutant_checker(op):
    failures = [r.summary() for r in M.baseline_results([op])[op] if not r.ok]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("mutant", M.MUTANTS, ids=lambda m: m.name)
def test_mutant_is_caught(mutant, mutant_scoreboard):
    result = M.check_mutant(mutant)
    mutant_scoreboard.append(result)
    assert result.caught, f"{mutant.name} ({mutant.description}) slipped through: {result.detail}"


def test_every_gradient_erratum_and_at_least_ten_more_are_planted():
    names = [m.name for m in M.MUTANTS]
    assert len(names) == len(set(names))
    errata = {m.name for m in M.MUTANTS if m.erratum}
    assert errata == set(M.GRADIENT_ERRATA)
    assert len(names) - len(errata) >= 10


def test_checker_flags_a_crashing_mutant_instead_of_raising():
    padded = next(m for m in M.MUTANTS if m.name == "conv_dx_padding_not_stripped")
    result = M.check_mutant(padded)  # dx has the padded shape: a shape error, reported
    assert result.caught and ("shape" in result.detail or "raised" in result.detail)


def test_unstable_softmax_is_caught_through_non_finite_values():
    unstable = next(m for m in M.MUTANTS if m.name == "unstable_softmax")
    result = M.check_mutant(unstable)
    assert result.caught and "non-finite" in result.detail and "stress" in result.detail


def test_a_loss_whose_vjp_ignores_its_cotangent_is_caught_only_with_a_cotangent_other_than_1():
    import dataclasses

    import numpy as np

    from jaxnets.conformance import compare_op, geometry_pool, make_op_case

    mutant = next(m for m in M.MUTANTS if m.name == "loss_vjp_ignores_cotangent")
    case = make_op_case("softmax_loss", geometry_pool("softmax_loss")[1], 0)
    assert case.dout.shape == () and abs(float(case.dout)) != 1.0
    assert not compare_op(case, impl=mutant.fn, wiring=mutant.wiring).ok
    at_the_root = dataclasses.replace(case, cotangent=[np.asarray(1.0)])  # how losses were checked before
    assert compare_op(at_the_root, impl=mutant.fn, wiring=mutant.wiring).ok
