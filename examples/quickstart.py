"""Written from the README alone: train with an optax optimizer, save, reload, check a rule."""
import jax, jax.numpy as jnp, numpy as np, optax
from jaxnets.data import load_sample
from jaxnets.models import load_params, save_params, two_layer_net
from jaxnets.training import TrainConfig, accuracy, train
from jaxnets.gradcheck import assert_grads

x, y, x_val, y_val = load_sample().split(1000, seed=0)
x, x_val = (a.reshape(len(a), -1).astype(np.float32) / 255 for a in (x, x_val))
model = two_layer_net(hidden_size=64, std=1e-2)
config = TrainConfig(optimizer=optax.sgd(0.1, momentum=0.9), iterations=200, batch_size=64)
result = train(model, model.init(jax.random.key(0)), (x, y, x_val, y_val), config, progress=False)
saved = load_params(save_params("quickstart.npz", model, result.params))
print("validation accuracy", accuracy(saved.model, saved.params, x_val, y_val))
cube_forward = lambda x: (x ** 3, x)
cube_backward = lambda dout, x: 3 * x ** 2 * dout
print(assert_grads(cube_forward, jnp.ones((3, 4)), backward=cube_backward, cases=12).text().splitlines()[-1])
