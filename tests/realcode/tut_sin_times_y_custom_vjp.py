# Source: https://github.com/jax-ml/jax
# Path:   docs/notebooks/Custom_derivative_rules_for_Python_code.md
#         (rendered as "Custom derivative rules" / "Custom derivative rules for
#         JAX-transformable Python functions", https://docs.jax.dev/en/latest/notebooks/Custom_derivative_rules_for_Python_code.html)
# Commit: ce92e479702b0642060c364b403675762eb22b1e
# Licence: Apache-2.0 (jax-ml/jax repository licence)
# Code cells copied verbatim (only the cells needed for this definition, in document order).
# Section: "Summary" -> "Custom VJPs with jax.custom_vjp" (cell 35ScHqhrBwPh); jnp import from cell zXic8tr--1PK.

import jax.numpy as jnp

from jax import custom_vjp

@custom_vjp
def f(x, y):
  return jnp.sin(x) * y

def f_fwd(x, y):
  # Returns primal output and residuals to be used in backward pass by f_bwd.
  return f(x, y), (jnp.cos(x), jnp.sin(x), y)

def f_bwd(res, g):
  cos_x, sin_x, y = res # Gets residuals computed in f_fwd
  return (cos_x * g * y, sin_x * g)

f.defvjp(f_fwd, f_bwd)
