"""jaxnets: neural networks written as pure JAX functions, every layer's backward pass derived
by hand and checked against `jax.grad`, a NumPy float64 twin and finite differences.

Packages, from the bottom up (each imports only from the ones before it and `programs`):

- `jaxnets.ops`: every layer as a pair `forward(...) -> (out, cache)`,
  `backward(dout, cache) -> grads`; `AUTODIFF` / `CUSTOM_VJP`, the layers as differentiable
  functions; `manual_vjp`, to wire a pair of your own into `jax.custom_vjp`.
- `jaxnets.data`: the built-in MNIST sample (sorted by label: use `Dataset.split`), IDX,
  Kaggle CSV, occupancy, tfds, the first-name corpus; preprocessing and input checks.
- `jaxnets.models`: the networks as `Model` records of plain functions over a dict of
  parameters (`two_layer_net`, `conv_net`, `fc_net`, `char_lm`, `transformer_lm`, ...);
  `save_params` / `load_params`.
- `jaxnets.grads`: `gradient(model, mode)` for mode "manual", "autodiff", "custom_vjp" or
  "fast"; `value_and_grad`.
- `jaxnets.training`: `TrainConfig` (a named optimiser or any optax one), `train`,
  `accuracy`, checkpoints, data-parallel training.
- `jaxnets.gradcheck`: the gradient checker for anyone's rules (`check`, `assert_grads`,
  `pytest --gradcheck`); it imports nothing from the rest of jaxnets.
- `jaxnets.conformance`: the project's own equivalence suite and its mutant catalogue.
- `jaxnets.programs`: the one bounded cache of compiled programs.

    import jax, optax
    from jaxnets.models import two_layer_net
    from jaxnets.grads import gradient

    model = two_layer_net(hidden_size=50, std=1e-2)
    params = model.init(jax.random.key(0))
    loss, grads, state = gradient(model, "manual")(params, model.init_state(), x, y)
"""
import importlib

__all__ = ["ops", "data", "models", "grads", "training", "gradcheck", "conformance", "programs"]


def __getattr__(name):
    """`jaxnets.training` and the others after a bare `import jaxnets`, imported when first used."""
    if name in __all__:
        return importlib.import_module(f"jaxnets.{name}")
    raise AttributeError(f"module 'jaxnets' has no attribute {name!r}")
