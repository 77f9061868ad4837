"""Planted bugs: is the equivalence checker strong enough to notice a wrong gradient?

Each mutant is a modified copy of one correct JAX function from `jaxnets.ops` — a layer's
hand-written backward, or a loss's `(value, grad)` function — with one plausible mistake:
the gradient errata of SPEC.md (`erratum=True`) and the classic slips of hand-written
backprop. `run_mutants` plugs each into `jaxnets.conformance.suite.compare_op` (the checker the
test suite uses) as the implementation of the manual and custom_vjp modes, over the
deterministic cases of `mutant_cases`; the mutant is caught when any comparison fails.
The same cases must pass with the correct functions (`baseline_results`), otherwise the
score would mean nothing.

The mutants are filed by op family under the stems of `jaxnets/ops/` (`mutants/<family>.py`,
each with its `PLANTED`); `MUTANTS` holds them in the order of `MUTANT_NAMES`. The optimizer
slip, Adam without bias correction, is planted in tests/test_optimizers.py against optax; the
custom-rule mutants (one per check only it catches) are in `mutants/custom.py`.
"""
from __future__ import annotations

from jaxnets.conformance.mutants import (activations, attention, conv, dense, dropout, gru, losses, norm, pool, rnn,
                                         sequence)
from jaxnets.conformance.mutants.mutant import MutantResult
from jaxnets.conformance.specs import geometry_pool
from jaxnets.conformance.suite import compare_op, make_op_case

#: the catalogue's order, which the reports and the README's tables follow: the documents'
#: mistakes (SPEC.md's errata first), the layers cs231n's assignment 2 adds, the sequence layers
MUTANT_NAMES = (
    "bias_summed_over_all_axes", "wrong_m_41_over_42", "relu_backward_without_mask", "unstable_softmax",
    "conv_dx_unflipped_kernel", "conv_dx_stride_off_by_one", "conv_dx_padding_not_stripped",
    "conv_db_averaged_over_positions", "max_pool_grad_to_all_tied_maxima", "max_pool_grad_to_last_maximum",
    "avg_pool_not_divided_by_window", "avg_pool_stride_off_by_one", "softmax_missing_1_over_n",
    "l2_gradient_half_reg_w", "tanh_grad_from_preactivation", "affine_transposed_dw", "bce_with_logits_sign_error",
    "relu_grad_one_at_zero", "sigmoid_grad_missing_one_minus", "bce_missing_denominator",
    "loss_vjp_ignores_cotangent", "batchnorm_dx_missing_mean_term", "batchnorm_dx_missing_variance_term",
    "batchnorm_dgamma_not_summed", "layernorm_normalised_over_batch_axis", "temporal_layernorm_rows_time_major",
    "groupnorm_groups_reshaped_wrongly", "dropout_mask_not_rescaled", "dropout_mask_ignored_in_backward",
    "svm_counts_the_correct_class", "leaky_relu_forgets_slope", "rnn_bptt_dh_not_carried",
    "lstm_g_gate_sigmoid_derivative", "embedding_backward_assigns", "temporal_loss_masked_in_forward_only",
    "attention_softmax_without_row_sum", "attention_scale_forgotten_in_backward",
    "attention_causal_mask_forgotten_in_backward", "gru_update_gate_swapped", "rnn_step_dWh_from_next_h",
    "lstm_bptt_cell_gradient_not_carried", "temporal_affine_db_per_step", "positional_gradient_from_one_sequence",
    "last_step_gradient_at_first_step", "gelu_without_product_rule", "multihead_heads_not_transposed",
    "transformer_mlp_residual_dropped",
)

_FAMILIES = (dense, activations, conv, pool, losses, norm, dropout, rnn, gru, sequence, attention)
_BY_NAME = {m.name: m for family in _FAMILIES for m in family.PLANTED}
if sorted(_BY_NAME) != sorted(MUTANT_NAMES):  # a mutant left out of MUTANT_NAMES would never run
    raise ImportError(f"MUTANT_NAMES and the families' PLANTED differ: {sorted(set(_BY_NAME) ^ set(MUTANT_NAMES))}")
MUTANTS = tuple(_BY_NAME[name] for name in MUTANT_NAMES)

#: The errata of SPEC.md that concern gradients; each must have a mutant.
GRADIENT_ERRATA = ("bias_summed_over_all_axes", "wrong_m_41_over_42", "relu_backward_without_mask", "unstable_softmax")

#: Geometries per op the mutants are checked on (the first of each op's pool: its edge cases).
MUTANT_GEOMETRIES = 4
MUTANT_SEEDS = (11, 12)


def mutant_cases(op):
    """The deterministic cases a mutant of `op` is checked on: the edge geometries, each
    with ordinary (kink-free, finite differences on) and stress inputs."""
    return [make_op_case(op, g, seed, stress)
            for g in geometry_pool(op)[:MUTANT_GEOMETRIES]
            for stress in (False, True)
            for seed in MUTANT_SEEDS]


def baseline_results(ops_=None):
    """The correct functions on every mutant case: {op: [Report, ...]}; all must pass."""
    ops_ = ops_ or sorted({m.op for m in MUTANTS})
    return {op: [compare_op(case) for case in mutant_cases(op)] for op in ops_}


def check_mutant(mutant):
    """Run the checker with `mutant` as the implementation until a case fails."""
    for case in mutant_cases(mutant.op):
        result = compare_op(case, impl=mutant.fn, wiring=mutant.wiring)
        if not result.ok:
            worst = max(result.failures, key=lambda c: c.err)
            return MutantResult(mutant.name, True, f"{case.label}: {worst}")
    return MutantResult(mutant.name, False, f"all {len(mutant_cases(mutant.op))} cases pass")


def run_mutants(mutants=MUTANTS):
    """[(name, caught, detail), ...] for every mutant."""
    return [check_mutant(m) for m in mutants]


def score(results):
    caught = sum(r.caught for r in results)
    return f"mutants caught {caught}/{len(results)}"
