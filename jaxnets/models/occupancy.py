"""Document 000's occupancy classifier: 5-5-1, tanh hidden layer, sigmoid output, mean BCE.

Row layout: x (N, 5) features, y (N,) 0/1 floats; W1 (5, H), b1 (H,), W2 (H, 1), b2 (1,).
"""
import jax
import jax.numpy as jnp

from jaxnets.models import checks
from jaxnets.models.base import Model, register_model
from jaxnets.ops import (
    AUTODIFF,
    affine_backward,
    affine_forward,
    binary_cross_entropy_with_logits,
    tanh_backward,
    tanh_forward,
)


@register_model("occupancy")
def occupancy_net(hidden=5, n_features=5):
    """000: W1 = randn * 0.01, b1 = 0, W2 = rand * 0.01 (uniform [0, 1)), b2 = 0."""
    checks.count("occupancy_net", "hidden", hidden)
    checks.count("occupancy_net", "n_features", n_features)
    config = {"hidden": hidden, "n_features": n_features}

    def init(key):
        k1, k2 = jax.random.split(key)
        return {
            "W1": 0.01 * jax.random.normal(k1, (n_features, hidden)),
            "b1": jnp.zeros(hidden),
            "W2": 0.01 * jax.random.uniform(k2, (hidden, 1)),
            "b2": jnp.zeros(1),
        }

    def scores(params, x, layers=AUTODIFF, state=None):
        a1 = layers.tanh(layers.affine(x, params["W1"], params["b1"]))
        return layers.affine(a1, params["W2"], params["b2"])[:, 0]

    def loss(params, state, x, y, key=None, layers=AUTODIFF):
        return layers.bce_with_logits(scores(params, x, layers), y), state

    def loss_and_grads(params, state, x, y, key=None, layout=None):
        z1, c1 = affine_forward(x, params["W1"], params["b1"])
        a1, c2 = tanh_forward(z1)
        z2, c3 = affine_forward(a1, params["W2"], params["b2"])
        loss_value, dz2 = binary_cross_entropy_with_logits(z2[:, 0], y)
        da1, dW2, db2 = affine_backward(dz2[:, None], c3)
        dz1 = tanh_backward(da1, c2)
        _, dW1, db1 = affine_backward(dz1, c1)
        return loss_value, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}, state

    def predict(params, x, state=None):
        return (scores(params, x) > 0).astype(jnp.int32)

    return Model("occupancy", config, init, scores, loss, loss_and_grads, predict,
                 input_shape=(n_features,), num_classes=2, binary=True)
