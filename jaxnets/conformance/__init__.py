"""The project's own conformance suite: every built-in op and model checked five ways (the
hand-written pair, autodiff, its custom_vjp wiring, the NumPy float64 twin, finite
differences) through the checker's engine (`jaxnets.gradcheck`), and the catalogue of planted
mistakes (mutants) it must catch."""
from jaxnets.conformance.suite import (ANALYTIC, JAX_MODES, OpCase, compare_model, compare_op, float32_meaningful,
                                       hand_op_case, make_op_case, op_cases, op_gradient_fn, op_sources)
from jaxnets.conformance.models import (MODEL_SPECS, MODEL_VARIANTS, ModelCase, kink_distance, make_model_case,
                                        model_cases)
from jaxnets.conformance.specs import OP_NAMES, OPS, POOL_SIZE, geometry_pool
from jaxnets.gradcheck.tolerances import (FD_MAX_COORDS, FD_STEP, KINK_MARGIN, TOL_ANALYTIC_F32,
                                          TOL_ANALYTIC_F32_MODELS, TOL_ANALYTIC_F64, TOL_FD_F64, precise_jax, tolerances)
from jaxnets.gradcheck.compare import compare_arrays

__all__ = ["ANALYTIC", "JAX_MODES", "OpCase", "compare_model", "compare_op", "float32_meaningful", "hand_op_case",
           "make_op_case", "op_cases", "op_gradient_fn", "op_sources", "MODEL_SPECS", "MODEL_VARIANTS", "ModelCase",
           "kink_distance", "make_model_case", "model_cases", "OP_NAMES", "OPS", "POOL_SIZE", "geometry_pool",
           "FD_MAX_COORDS", "FD_STEP", "KINK_MARGIN", "TOL_ANALYTIC_F32", "TOL_ANALYTIC_F32_MODELS",
           "TOL_ANALYTIC_F64", "TOL_FD_F64", "precise_jax", "tolerances", "compare_arrays"]
