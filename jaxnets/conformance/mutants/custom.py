"""Planted mistakes in JAX's own custom-derivative style, one for each check that only it
catches, beside the correct rule each is a copy of.

Each `CustomMutant` names the row of the check table that must fail (`row`, matched on the
row's name) and says why no other row can: the mistake lives where only that oracle looks.

- second order: a custom_vjp tanh whose fwd saves `stop_gradient(y)` as its residual — right
  to first order everywhere, so only differentiating the rule itself shows it (the mistake
  `jax.test_util.check_grads(order=2)` and `torch.autograd.gradgradcheck` exist for);
- in context: a custom_vjp that hands its residual to bwd through a Python variable instead of
  returning it — called directly (fwd, then bwd, in one trace) it works; under `jax.grad`
  inside a larger jitted function the saved value is a tracer of another trace;
- forward ~ reverse (dot product): the tutorial's implicit fixed point (custom_vjp over
  lax.while_loop) with its backward solve stopped at 1e-7: off by ~1e-8 relative, below what finite
  differences resolve, while reverse-mode autodiff cannot run through `lax.while_loop` — only
  forward mode through the primal compares with the rule at analytic precision;
- jvp rule at a kink: a custom_jvp ReLU whose tangent at exactly 0 is 2 * t, outside the
  one-sided slopes [0, t];
- at the domain's boundary: a custom_jvp x**1.5 whose tangent 1.5 * x / sqrt(x) * t is NaN at
  x = 0, where the forward is finite;
- a custom_vjp whose bwd returns a bare array, not a tuple of one cotangent (JAX's
  `jax.grad` raises TypeError on it).
"""
from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


class CustomMutant(NamedTuple):
    name: str
    correct: Callable
    mutant: Callable
    example: tuple
    row: str  # the check-table row that must fail (a substring of its name)
    description: str
    alone: bool = True  # whether no other row fails on it


# ----------------------------------------------------------------------------- second order

@jax.custom_vjp
def tanh_vjp(x):
    return jnp.tanh(x)


def _tanh_fwd(x):
    y = jnp.tanh(x)
    return y, y


def _tanh_bwd(y, g):
    return (g * (1 - y * y),)


tanh_vjp.defvjp(_tanh_fwd, _tanh_bwd)


@jax.custom_vjp
def tanh_vjp_stopped_residual(x):
    return jnp.tanh(x)


def _tanh_fwd_stopped(x):
    y = jnp.tanh(x)
    return y, lax.stop_gradient(y)  # the mistake: the residual no longer depends on x


tanh_vjp_stopped_residual.defvjp(_tanh_fwd_stopped, _tanh_bwd)


# ----------------------------------------------------------------------------- in context

@jax.custom_vjp
def softplus_vjp(x):
    return jnp.logaddexp(x, 0.0)


def _softplus_fwd(x):
    return jnp.logaddexp(x, 0.0), x


def _softplus_bwd(x, g):
    return (g * jax.nn.sigmoid(x),)


softplus_vjp.defvjp(_softplus_fwd, _softplus_bwd)

_SAVED = {}


@jax.custom_vjp
def softplus_vjp_global_residual(x):
    return jnp.logaddexp(x, 0.0)


def _softplus_fwd_global(x):
    _SAVED["x"] = x  # the mistake: the residual kept in Python, not returned
    return jnp.logaddexp(x, 0.0), None


def _softplus_bwd_global(_, g):
    return (g * jax.nn.sigmoid(_SAVED["x"]),)


softplus_vjp_global_residual.defvjp(_softplus_fwd_global, _softplus_bwd_global)


# ----------------------------------------------------------------------------- dot product

def _fixed_point_pair(rev_tol):
    """The JAX tutorial's implicit-function fixed point (custom_vjp over lax.while_loop),
    with the backward solve stopping at `rev_tol`."""

    def iterate(f, a, x0, tol):
        def cond(carry):
            x_prev, x = carry
            return jnp.abs(x_prev - x) > tol

        def body(carry):
            return carry[1], f(a, carry[1])

        return lax.while_loop(cond, body, (x0, f(a, x0)))[1]

    @partial(jax.custom_vjp, nondiff_argnums=(0,))
    def fixed_point(f, a, x_guess):
        return iterate(f, a, x_guess, 1e-14)

    def fwd(f, a, x_guess):
        x_star = fixed_point(f, a, x_guess)
        return x_star, (a, x_star)

    def rev(f, res, x_bar):
        a, x_star = res
        _, vjp_a = jax.vjp(lambda a: f(a, x_star), a)
        _, vjp_x = jax.vjp(lambda x: f(a, x), x_star)
        w = iterate(lambda _, u: x_bar + vjp_x(u)[0], None, x_bar, rev_tol)
        return vjp_a(w)[0], jnp.zeros_like(x_star)

    fixed_point.defvjp(fwd, rev)
    return fixed_point


def cos_update(a, x):
    """x = a + cos(x) / 2: a contraction (|f'| <= 1/2) with one fixed point for every real a,
    so the backward solve needs many steps and stopping it early shows."""
    return a + 0.5 * jnp.cos(x)


fixed_point = _fixed_point_pair(1e-14)
fixed_point_loose_backward = _fixed_point_pair(1e-7)


# ----------------------------------------------------------------------------- jvp rules

@jax.custom_jvp
def relu_jvp(x):
    return jnp.maximum(x, 0.0)


@relu_jvp.defjvp
def _relu_jvp_rule(primals, tangents):
    (x,), (t,) = primals, tangents
    return relu_jvp(x), jnp.where(x > 0, t, 0.0)


@jax.custom_jvp
def relu_jvp_wrong_at_zero(x):
    return jnp.maximum(x, 0.0)


@relu_jvp_wrong_at_zero.defjvp
def _relu_jvp_rule_wrong(primals, tangents):
    (x,), (t,) = primals, tangents
    return relu_jvp_wrong_at_zero(x), jnp.where(x > 0, t, jnp.where(x == 0, 2.0 * t, 0.0))  # 2t at the kink


@jax.custom_jvp
def pow_three_halves(x):
    return x * jnp.sqrt(x)


@pow_three_halves.defjvp
def _pow_rule(primals, tangents):
    (x,), (t,) = primals, tangents
    return pow_three_halves(x), 1.5 * jnp.sqrt(x) * t


@jax.custom_jvp
def pow_three_halves_nan_at_zero(x):
    return x * jnp.sqrt(x)


@pow_three_halves_nan_at_zero.defjvp
def _pow_rule_nan(primals, tangents):
    (x,), (t,) = primals, tangents
    return pow_three_halves_nan_at_zero(x), 1.5 * x / jnp.sqrt(x) * t  # 0 / 0 at x = 0


# ----------------------------------------------------------------------------- bwd contract

@jax.custom_vjp
def sin_vjp(x):
    return jnp.sin(x)


sin_vjp.defvjp(lambda x: (jnp.sin(x), jnp.cos(x)), lambda c, g: (c * g,))


@jax.custom_vjp
def sin_vjp_bare_array(x):
    return jnp.sin(x)


sin_vjp_bare_array.defvjp(lambda x: (jnp.sin(x), jnp.cos(x)), lambda c, g: c * g)  # not a tuple


_RNG = np.random.default_rng(0)
_X = _RNG.standard_normal((4, 5))

CUSTOM_MUTANTS = (
    CustomMutant("custom_vjp_stop_gradient_residual", tanh_vjp, tanh_vjp_stopped_residual, (_X,),
                 "second order", "fwd saves stop_gradient(y): right to first order, its own derivative wrong"),

    CustomMutant("fixed_point_backward_not_converged", fixed_point, fixed_point_loose_backward,
                 (cos_update, np.array(0.7), np.array(0.3)), "dot product",
                 "the implicit backward solve stops at 1e-7 (off by ~1e-8; reverse autodiff cannot run)"),
    CustomMutant("custom_jvp_wrong_at_kink", relu_jvp, relu_jvp_wrong_at_zero, (_X,), "jvp rule",
                 "ReLU's tangent at exactly 0 is 2t, outside the one-sided slopes", alone=False),
    CustomMutant("custom_jvp_nan_at_boundary", pow_three_halves, pow_three_halves_nan_at_zero,
                 (np.abs(_X) + 0.1,), "runs, finite", "x**1.5's tangent 1.5 x / sqrt(x) t is NaN at x = 0",
                 alone=False),
    CustomMutant("custom_vjp_bwd_returns_bare_array", sin_vjp, sin_vjp_bare_array, (_X,), "runs, finite",
                 "bwd returns c * g, not (c * g,)", alone=False),
)
