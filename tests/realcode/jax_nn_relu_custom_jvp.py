# Source: https://github.com/jax-ml/jax  (licence: Apache-2.0)
# Path:   jax/_src/nn/functions.py  -- definition of jax.nn.relu
# Commit: not reported by the code index for this stored version (index file id 801596963);
#         this is the 2024/2025 form where relu is `@custom_jvp @jax.jit`. (In the newest stored
#         version, commit 01c36571d74f43f0cabd807ca4271bafa26f1302, relu is NO LONGER custom_jvp:
#         it is `lax.select(lax.ge(x, z), x, z)`.)
# Adaptation (imports ONLY): original imports `from jax._src.typing import Array, ArrayLike`
#   replaced by the public `from jax import Array` / `from jax.typing import ArrayLike`.
#   All other imports shown are the original ones actually used by this block.
#   The definition block below (decorators, docstring, body, defjvps line and its comment) is verbatim.

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import custom_jvp
from jax import lax
from jax import Array                 # was: from jax._src.typing import Array, ArrayLike
from jax.typing import ArrayLike      # was: from jax._src.typing import Array, ArrayLike


# activations

@custom_jvp
@jax.jit
def relu(x: ArrayLike) -> Array:
  r"""Rectified linear unit activation function.

  Computes the element-wise function:

  .. math::
    \mathrm{relu}(x) = \max(x, 0)

  except under differentiation, we take:

  .. math::
    \nabla \mathrm{relu}(0) = 0

  For more information see
  `Numerical influence of ReLU’(0) on backpropagation
  <https://dl.acm.org/doi/10.5555/3540261.3540297>`_.

  Args:
    x : input array

  Returns:
    An array.

  Examples:
    >>> jax.nn.relu(jax.numpy.array([-2., -1., -0.5, 0, 0.5, 1., 2.]))
    Array([0. , 0. , 0. , 0. , 0.5, 1. , 2. ], dtype=float32)

  See also:
    :func:`relu6`

  """
  return jnp.maximum(x, 0)
# For behavior at 0, see https://dl.acm.org/doi/10.5555/3540261.3540297
relu.defjvps(lambda g, ans, x: lax.select(x > 0, g, lax.full_like(g, 0)))
