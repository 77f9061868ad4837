# Source: https://github.com/jax-ml/jax  (licence: Apache-2.0)
# Path:   jax/_src/scipy/special.py  -- jax.scipy.special.logit / xlogy / xlog1py and the private _xlogx
# Commit: 3d2f8267a5d85c7cc0970313914ab280d2b60003  (2023-era version)
# Adaptation:
#   * imports: `from jax._src import custom_derivatives` -> public `from jax import custom_derivatives`;
#     `from jax._src.typing import Array, ArrayLike` -> public `jax.Array` / `jax.typing.ArrayLike`.
#     `promote_args_inexact` (jax._src.numpy.util) and `_lax_const` (jax._src.lax.lax._const) have NO
#     public equivalent, so the original private-jax imports are kept unchanged.
#   * the docs-only decorator lines `@_wraps(osp_special.<name>, module='scipy.special', ...)` were
#     REMOVED (they only copy scipy docstrings and would need scipy + jax._src.numpy.util._wraps).
#     Nothing else was changed; bodies, jvp rules and defjvp/defjvps lines are verbatim.

import numpy as np

import jax.numpy as jnp
from jax import lax

from jax import custom_derivatives                               # was: from jax._src import custom_derivatives
from jax._src.lax.lax import _const as _lax_const               # original (private) import, kept
from jax._src.numpy.util import promote_args_inexact            # original (private) import, kept
from jax import Array                                           # was: from jax._src.typing import Array, ArrayLike
from jax.typing import ArrayLike                                # was: from jax._src.typing import Array, ArrayLike


@custom_derivatives.custom_jvp
def logit(x: ArrayLike) -> Array:
  x, = promote_args_inexact("logit", x)
  return lax.log(lax.div(x, lax.sub(_lax_const(x, 1), x)))
logit.defjvps(
    lambda g, ans, x: lax.div(g, lax.mul(x, lax.sub(_lax_const(x, 1), x))))


@custom_derivatives.custom_jvp
def xlogy(x: ArrayLike, y: ArrayLike) -> Array:
  # Note: xlogy(0, 0) should return 0 according to the function documentation.
  x, y = promote_args_inexact("xlogy", x, y)
  x_ok = x != 0.
  safe_x = jnp.where(x_ok, x, 1.)
  safe_y = jnp.where(x_ok, y, 1.)
  return jnp.where(x_ok, lax.mul(safe_x, lax.log(safe_y)), jnp.zeros_like(x))

def _xlogy_jvp(primals, tangents):
  (x, y) = primals
  (x_dot, y_dot) = tangents
  result = xlogy(x, y)
  return result, (x_dot * lax.log(y) + y_dot * x / y).astype(result.dtype)
xlogy.defjvp(_xlogy_jvp)


@custom_derivatives.custom_jvp
def xlog1py(x: ArrayLike, y: ArrayLike) -> Array:
  # Note: xlog1py(0, -1) should return 0 according to the function documentation.
  x, y = promote_args_inexact("xlog1py", x, y)
  x_ok = x != 0.
  safe_x = jnp.where(x_ok, x, 1.)
  safe_y = jnp.where(x_ok, y, 1.)
  return jnp.where(x_ok, lax.mul(safe_x, lax.log1p(safe_y)), jnp.zeros_like(x))

def _xlog1py_jvp(primals, tangents):
  (x, y) = primals
  (x_dot, y_dot) = tangents
  result = xlog1py(x, y)
  return result, (x_dot * lax.log1p(y) + y_dot * x / (1 + y)).astype(result.dtype)
xlog1py.defjvp(_xlog1py_jvp)

@custom_derivatives.custom_jvp
def _xlogx(x):
  """Compute x log(x) with well-defined derivatives."""
  return xlogy(x, x)

def _xlogx_jvp(primals, tangents):
  x, = primals
  x_dot, = tangents
  return  _xlogx(x), x_dot * (lax.log(x) + 1)
_xlogx.defjvp(_xlogx_jvp)
