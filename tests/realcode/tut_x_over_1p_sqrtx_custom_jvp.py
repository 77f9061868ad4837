# Source: https://github.com/jax-ml/jax
# Path:   docs/notebooks/Custom_derivative_rules_for_Python_code.md
#         (rendered as "Custom derivative rules" / "Custom derivative rules for
#         JAX-transformable Python functions", https://docs.jax.dev/en/latest/notebooks/Custom_derivative_rules_for_Python_code.html)
# Commit: ce92e479702b0642060c364b403675762eb22b1e
# Licence: Apache-2.0 (jax-ml/jax repository licence)
# Code cells copied verbatim (only the cells needed for this definition, in document order).
# Section: "Enforcing a differentiation convention" (cell ksHmCkcSKQJr); imports from cell zXic8tr--1PK.

import jax.numpy as jnp
from jax import custom_jvp

@custom_jvp
def f(x):
  return x / (1 + jnp.sqrt(x))

@f.defjvp
def f_jvp(primals, tangents):
  x, = primals
  x_dot, = tangents
  ans = f(x)
  ans_dot = ((jnp.sqrt(x) + 2) / (2 * (jnp.sqrt(x) + 1)**2)) * x_dot
  return ans, ans_dot
