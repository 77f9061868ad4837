# Source: https://github.com/jax-ml/jax
# Path:   docs/notebooks/Custom_derivative_rules_for_Python_code.md
#         (rendered as "Custom derivative rules" / "Custom derivative rules for
#         JAX-transformable Python functions", https://docs.jax.dev/en/latest/notebooks/Custom_derivative_rules_for_Python_code.html)
# Commit: ce92e479702b0642060c364b403675762eb22b1e
# Licence: Apache-2.0 (jax-ml/jax repository licence)
# Code cells copied verbatim (only the cells needed for this definition, in document order).
# Section: "Use jax.custom_jvp to define forward-mode ..." -> defjvps with None (cell z4z3esdZbTzQ);
#   imports from cell nVkhbIFAOGZk. NOTE: None means "JVP wrt y is zero" -> deliberately not the true
#   derivative in y (true d/dy = x**2).

from jax import custom_jvp
import jax.numpy as jnp

@custom_jvp
def f(x, y):
  return x ** 2 * y

f.defjvps(lambda x_dot, primal_out, x, y: 2 * x * y * x_dot,
          None)
