# Source: https://github.com/jax-ml/jax
# Path:   docs/notebooks/Custom_derivative_rules_for_Python_code.md
#         (rendered as "Custom derivative rules" / "Custom derivative rules for
#         JAX-transformable Python functions", https://docs.jax.dev/en/latest/notebooks/Custom_derivative_rules_for_Python_code.html)
# Commit: ce92e479702b0642060c364b403675762eb22b1e
# Licence: Apache-2.0 (jax-ml/jax repository licence)
# Code cells copied verbatim (only the cells needed for this definition, in document order).
# Section: "Implicit function differentiation of iterative implementations"
#   (cells 2uA8X2izXH2b [while_loop import], rDDwM8bYYzRT [newton_sqrt], g4jo-xlvdiym [custom_vjp fixed_point]);
#   jnp import from cell zXic8tr--1PK, partial/custom_vjp imports from cell 8jfjSanIW_tJ.
#   The non-custom first definition of fixed_point (cell 2uA8X2izXH2b) is omitted; newton_sqrt is the
#   tutorial's own use of it (it looks up the global name fixed_point at call time).

import jax.numpy as jnp
from functools import partial
from jax import custom_vjp
from jax.lax import while_loop

def newton_sqrt(a):
  update = lambda a, x: 0.5 * (x + a / x)
  return fixed_point(update, a, a)

from jax import vjp

@partial(custom_vjp, nondiff_argnums=(0,))
def fixed_point(f, a, x_guess):
  def cond_fun(carry):
    x_prev, x = carry
    return jnp.abs(x_prev - x) > 1e-6

  def body_fun(carry):
    _, x = carry
    return x, f(a, x)

  _, x_star = while_loop(cond_fun, body_fun, (x_guess, f(a, x_guess)))
  return x_star

def fixed_point_fwd(f, a, x_init):
  x_star = fixed_point(f, a, x_init)
  return x_star, (a, x_star)

def fixed_point_rev(f, res, x_star_bar):
  a, x_star = res
  _, vjp_a = vjp(lambda a: f(a, x_star), a)
  a_bar, = vjp_a(fixed_point(partial(rev_iter, f),
                             (a, x_star, x_star_bar),
                             x_star_bar))
  return a_bar, jnp.zeros_like(x_star)

def rev_iter(f, packed, u):
  a, x_star, x_star_bar = packed
  _, vjp_x = vjp(lambda x: f(a, x), x_star)
  return x_star_bar + vjp_x(u)[0]

fixed_point.defvjp(fixed_point_fwd, fixed_point_rev)
