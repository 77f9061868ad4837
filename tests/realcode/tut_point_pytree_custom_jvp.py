# Source: https://github.com/jax-ml/jax
# Path:   docs/notebooks/Custom_derivative_rules_for_Python_code.md
#         (rendered as "Custom derivative rules" / "Custom derivative rules for
#         JAX-transformable Python functions", https://docs.jax.dev/en/latest/notebooks/Custom_derivative_rules_for_Python_code.html)
# Commit: ce92e479702b0642060c364b403675762eb22b1e
# Licence: Apache-2.0 (jax-ml/jax repository licence)
# Code cells copied verbatim (only the cells needed for this definition, in document order).
# Section: "Working with list / tuple / dict containers (and other pytrees)" (cell 6sDLZ3dAn3P2);
#   imports from cell zXic8tr--1PK. NOTE: uses stdlib collections.namedtuple.

import jax.numpy as jnp
from jax import custom_jvp

from collections import namedtuple
Point = namedtuple("Point", ["x", "y"])

@custom_jvp
def f(pt):
  x, y = pt.x, pt.y
  return {'a': x ** 2,
          'b': (jnp.sin(x), jnp.cos(y))}

@f.defjvp
def f_jvp(primals, tangents):
  pt, = primals
  pt_dot, =  tangents
  ans = f(pt)
  ans_dot = {'a': 2 * pt.x * pt_dot.x,
             'b': (jnp.cos(pt.x) * pt_dot.x, -jnp.sin(pt.y) * pt_dot.y)}
  return ans, ans_dot

def fun(pt):
  dct = f(pt)
  return dct['a'] + dct['b'][0]
