"""Accuracy of a model on a data set, in batches inside one jit (so 60000 images fit)."""
import jax
import jax.numpy as jnp
import numpy as np

from jaxnets.programs import program_cache

#: rows per forward pass in `accuracy`
ACCURACY_BATCH = 2000


def count_correct(predict, params, state, x, y, batch):
    """Number of rows where predict(params, x, state) == y, `batch` rows per forward pass
    (static shapes: whole batches through `lax.map`, then the remainder). Traceable; see
    `accuracy`."""
    n = x.shape[0]
    full = n // batch

    def correct(xb, yb):
        return jnp.sum(predict(params, xb, state) == yb, dtype=jnp.int32)

    total = jnp.zeros((), jnp.int32)
    if full:
        xs = x[: full * batch].reshape((full, batch) + x.shape[1:])
        ys = y[: full * batch].reshape((full, batch) + y.shape[1:])
        total = total + jnp.sum(jax.lax.map(lambda a: correct(*a), (xs, ys)))
    if n > full * batch:
        total = total + correct(x[full * batch:], y[full * batch:])
    return total


@program_cache
def _count_program(model, batch):
    return jax.jit(lambda params, state, x, y: count_correct(model.predict, params, state, x, y, batch))


def number_correct(model, params, x, y, batch=ACCURACY_BATCH, state=None):
    """How many labels y `model.predict` gets right, `batch` rows per forward pass inside one
    jit; x (N, ...), y (N, *model.label_shape) (a target per step: -1 is no target, never
    predicted); state: the model's running statistics (batch norm)."""
    if state is None and model.stateful:
        raise ValueError(f"accuracy: model {model.name!r} has batch-norm running statistics: pass state= "
                         "(TrainResult.model_state after train(), or model.init_state() for a new model)")
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    if x.ndim < 1 or y.shape != (x.shape[0], *model.label_shape):
        raise ValueError(f"accuracy: labels must have shape {(x.shape[0] if x.ndim else '?', *model.label_shape)}, "
                         f"got {y.shape}")
    if x.shape[0] == 0:
        raise ValueError("accuracy: empty data")
    if batch < 1:
        raise ValueError(f"accuracy: batch must be >= 1, got {batch}")
    return int(_count_program(model, min(int(batch), x.shape[0]))(params, state, x, y))


def accuracy(model, params, x, y, batch=ACCURACY_BATCH, state=None):
    """Fraction of the labels y that `model.predict` gets right (see `number_correct`): of the
    rows, or of the targets (y >= 0) of a model with a target per step."""
    scored = np.shape(x)[0] if not model.label_shape else int(np.sum(np.asarray(y) >= 0))
    return number_correct(model, params, x, y, batch, state) / scored
