"""The gradient-equivalence engine: every op and every model, gradients from five sources
that must agree, and planted mistakes that prove the checks have teeth.

- `compare_op(case)`: one op (a layer pair or a loss) on one set of inputs, five ways — the
  hand-written backward (manual), `jax.grad` of its forward (autodiff), `jax.grad` through its
  `custom_vjp` wiring, the NumPy float64 twin (`reference_numpy`), and Richardson-extrapolated
  central differences of the NumPy forward — every pair compared with cs231n's relative error;
- `compare_model(case)`: a whole network the same way, its fast layout included;
- `OPS` / `MODEL_SPECS`: what is checked and on which generated cases (edge geometries, kinks,
  ties, saturation); `mutants`: the catalogue of planted mistakes;
- `check_layer(forward, backward, example, ...)` / `assert_layer`: the same engine for any
  user's (forward, backward) pair in JAX or NumPy, on cases generated from one example, with a
  report that says where and why (`LayerReport`); `LayerInputError` for input it cannot check.

Tolerances (with the measurements that set them) are in `tolerances`.
"""
from jaxnets.verify import mutants
from jaxnets.verify.cases import LayerCase, load_case, save_case
from jaxnets.verify.compare import CheckResult, Comparison, compare_arrays
from jaxnets.verify.layer import Example, LayerInputError
from jaxnets.verify.layer_check import DEFAULT_CASES, assert_layer, check_layer
from jaxnets.verify.model_checks import (MODEL_SPECS, MODEL_VARIANTS, ModelCase, compare_model, jax_modes,
                                         kink_distance, make_model_case, model_cases)
from jaxnets.verify.op_checks import (ANALYTIC, JAX_MODES, LossAux, OpCase, compare_op, float32_meaningful,
                                      jax_op_modes, jitted_op_gradient_fn, make_op_case, op_cases, op_gradient_fn)
from jaxnets.verify.op_specs import OP_NAMES, OPS, POOL_SIZE, OpSpec, geometry_pool
from jaxnets.verify.report import LayerReport
from jaxnets.verify.tolerances import (FD_MAX_COORDS, FD_STEP, KINK_MARGIN, TOL_ANALYTIC_F32,
                                       TOL_ANALYTIC_F32_MODELS, TOL_ANALYTIC_F64, TOL_FD_F64, precise_jax,
                                       tolerances)

__all__ = [
    "check_layer", "assert_layer", "DEFAULT_CASES", "Example", "LayerInputError", "LayerCase", "LayerReport",
    "load_case", "save_case",
    "mutants", "CheckResult", "Comparison", "compare_arrays",
    "MODEL_SPECS", "MODEL_VARIANTS", "ModelCase", "compare_model", "jax_modes", "kink_distance",
    "make_model_case", "model_cases",
    "ANALYTIC", "JAX_MODES", "LossAux", "OpCase", "compare_op", "float32_meaningful", "jax_op_modes",
    "jitted_op_gradient_fn", "make_op_case", "op_cases", "op_gradient_fn",
    "OP_NAMES", "OPS", "POOL_SIZE", "OpSpec", "geometry_pool",
    "FD_MAX_COORDS", "FD_STEP", "KINK_MARGIN", "TOL_ANALYTIC_F32", "TOL_ANALYTIC_F32_MODELS",
    "TOL_ANALYTIC_F64", "TOL_FD_F64", "precise_jax", "tolerances",
]
