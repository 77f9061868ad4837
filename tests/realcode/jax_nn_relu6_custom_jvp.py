# Source: https://github.com/jax-ml/jax  (licence: Apache-2.0)
# Path:   jax/_src/nn/functions.py  -- definition of jax.nn.relu6
# Commit: 01c36571d74f43f0cabd807ca4271bafa26f1302
# Adaptation (imports ONLY): `from jax._src.typing import Array, ArrayLike` replaced by the public
#   `from jax import Array` / `from jax.typing import ArrayLike`. Definition block verbatim.

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax import Array                 # was: from jax._src.typing import Array, ArrayLike
from jax.typing import ArrayLike      # was: from jax._src.typing import Array, ArrayLike


@jax.custom_jvp
@jax.jit
def relu6(x: ArrayLike) -> Array:
  r"""Rectified Linear Unit 6 activation function.

  Computes the element-wise function

  .. math::
    \mathrm{relu6}(x) = \min(\max(x, 0), 6)

  except under differentiation, we take:

  .. math::
    \nabla \mathrm{relu}(0) = 0

  and

  .. math::
    \nabla \mathrm{relu}(6) = 0

  Args:
    x : input array

  Returns:
    An array.

  See also:
    :func:`relu`
  """
  return jnp.minimum(jnp.maximum(x, 0), 6.)
relu6.defjvps(lambda g, ans, x:
              lax.select((x > 0) & (x < 6), g, lax.full_like(g, 0)))
