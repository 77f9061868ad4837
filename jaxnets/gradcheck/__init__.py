"""jaxnets.gradcheck — check anyone's derivative rules.

    from jaxnets.gradcheck import check, assert_grads

    report = check(my_custom_vjp_fn, x, y)          # a jax.custom_vjp / custom_jvp, or any JAX function
    report = check(conv_forward, x, w, b, conv_param, backward=conv_backward)   # a cs231n-style pair
    print(report.text()); report.ok
    assert_grads(my_rule, x)                        # in a test: AssertionError with the report
    assert_grads("layers.py")                       # everything checkable in a file

The rule is compared with autodiff of its primal, finite differences (the arbiter where the
two disagree), your own object under jax.grad in context, a reference you trust, forward mode,
the dot-product identity, its own second derivative, jit and vmap — on generated cases that
stress kinks, ties, saturation, batch sizes and upstream gradients. Each row says PASS, FAIL,
AMBIGUOUS (at a kink finite differences are no oracle) or DOMAIN (the function is not
differentiable there). `Options` sets how many cases, the seed and the tolerances.

From the shell: `python -m jaxnets.gradcheck FILE.py[:NAME]` (or `jaxnets gradcheck`); in
pytest: `pytest --gradcheck path/` and the `gradcheck` fixture (`jaxnets.gradcheck.pytest_plugin`).
"""
from jaxnets.gradcheck.api import check
from jaxnets.gradcheck.case import Case, Example, load_case, save_case
from jaxnets.gradcheck.options import Options
from jaxnets.gradcheck.prepare import CheckInputError
from jaxnets.gradcheck.report import Report
from jaxnets.gradcheck.testing import assert_grads

__all__ = ["check", "assert_grads", "Options", "Report", "CheckInputError", "Example", "Case", "load_case",
           "save_case"]
