"""The gradient checker: one engine for the equivalence suite and for anyone's own rules."""
from jaxnets.verify.suite import (ANALYTIC, JAX_MODES, OpCase, compare_model, compare_op, float32_meaningful,
                                  hand_op_case, make_op_case, op_cases, op_gradient_fn, op_sources)
from jaxnets.verify.model_specs import (MODEL_SPECS, MODEL_VARIANTS, ModelCase, kink_distance, make_model_case,
                                        model_cases)
from jaxnets.verify.op_specs import OP_NAMES, OPS, POOL_SIZE, geometry_pool
from jaxnets.verify.tolerances import (FD_MAX_COORDS, FD_STEP, KINK_MARGIN, TOL_ANALYTIC_F32, TOL_ANALYTIC_F32_MODELS,
                                       TOL_ANALYTIC_F64, TOL_FD_F64, precise_jax, tolerances)
from jaxnets.verify.compare import compare_arrays
from jaxnets.verify.api import DEFAULT_CASES, assert_layer, check, check_layer
from jaxnets.verify.case import Case, Example, load_case, save_case
from jaxnets.verify.prepare import CheckInputError
from jaxnets.verify.report import Report

#: the old name of CheckInputError
LayerInputError = CheckInputError
