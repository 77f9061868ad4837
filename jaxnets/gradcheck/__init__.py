"""The gradient checker: anyone's derivative rule judged against autodiff, finite differences
and a reference — a `jax.custom_vjp` / `custom_jvp`, a cs231n-style (forward, backward) pair,
a loss returning its own gradient, or a whole file (`python -m jaxnets.gradcheck FILE.py`)."""
from jaxnets.gradcheck.api import DEFAULT_CASES, assert_layer, check, check_layer
from jaxnets.gradcheck.case import Case, Example, load_case, save_case
from jaxnets.gradcheck.prepare import CheckInputError
from jaxnets.gradcheck.report import Report
from jaxnets.gradcheck.tolerances import precise_jax

__all__ = ["DEFAULT_CASES", "Case", "CheckInputError", "Example", "Report", "assert_layer", "check",
           "check_layer", "load_case", "precise_jax", "save_case"]
