"""The networks every backprop course builds next (cs231n assignment 2), as lists of stages
(`netspec.networks`, run by `jaxnets.models.stages`): a fully connected net of any depth with
optional batch or layer norm and dropout, and a deeper ConvNet with spatial batch norm and
dropout.

    fc_net:        {affine - [batch/layer norm] - ReLU - [dropout]} x (L - 1) - affine - softmax
    deep_conv_net: {conv - [spatial batch norm] - ReLU - 2x2 max pool} x K
                   - affine - [batch norm] - ReLU - [dropout] - affine - softmax

Both add 002's L2 penalty 0.5 reg |W|^2 on every weight (not biases, gammas, betas). With
batch norm they carry state (running means and variances, momentum `momentum`), updated by
every training loss and used in inference; with dropout their training loss needs a key.
"""
import math
import numbers

import jax
import jax.numpy as jnp

from jaxnets.models import checks
from jaxnets.models import stages as S
from jaxnets.models.base import Model, register_model
from jaxnets.ops import AUTODIFF
from netspec.networks import deep_conv_stages, fc_net_stages

NORMS = (None, "batchnorm", "layernorm")


def _model(name, config, stages, init, input_shape, num_classes, reg, momentum, widths, dropout_shapes,
           conv_filters=None):
    stateful = any(s.decl.statistics for s in stages)
    stochastic = any("randomness" in s.decl.constants for s in stages)

    def scores(params, x, layers=AUTODIFF, state=None):
        return S.forward(stages, params, x, layers, train=False, state=state)[0]

    def new_state(state, stats):
        return S.update_state(state, stats, momentum) if stateful else state

    def needs_key(key):
        if stochastic and key is None:
            raise ValueError(f"{name}: the training loss draws dropout masks and needs a key")

    def loss(params, state, x, y, key=None, layers=AUTODIFF):
        needs_key(key)
        out, stats = S.forward(stages, params, x, layers, train=True, key=key)
        return S.l2_value(layers.softmax_loss(out, y), params, reg, layers), new_state(state, stats)

    def loss_and_grads(params, state, x, y, key=None, layout=None):
        needs_key(key)
        value, grads, stats = S.manual_loss_and_grads(stages, params, x, y, reg, key, layout)
        return value, grads, new_state(state, stats)

    def noise(key, n):
        return S.noise(stages, key, {j: (n, *shape) for j, shape in dropout_shapes.items()})

    extra = {"init_state": lambda: S.init_state(stages, widths)} if stateful else {}
    return Model(
        name, config, init, scores, loss, loss_and_grads, S.predict_fn(stages),
        input_shape=tuple(input_shape), num_classes=num_classes, conv_filters=conv_filters,
        noise=noise if stochastic else None, **extra,
    )


def _check(name, norm, dropout, momentum, input_size, num_classes, reg, weight_scale):
    if input_size is not None:
        checks.count(name, "input_size", input_size)
    checks.count(name, "num_classes", num_classes, 2)
    checks.strength(name, "reg", reg)
    checks.strength(name, "weight_scale", weight_scale, positive=True, optional=True)
    if norm not in NORMS:
        raise ValueError(f"{name}: norm must be one of {NORMS}, got {norm!r}")
    if not (isinstance(dropout, numbers.Real) and 0 <= dropout < 1):
        raise ValueError(f"{name}: dropout (the probability of dropping) must be in [0, 1), got {dropout}")
    if not (isinstance(momentum, numbers.Real) and 0 <= momentum < 1):
        raise ValueError(f"{name}: momentum must be in [0, 1), got {momentum}")


@register_model("fc_net")
def fc_net(hidden_dims=(100, 100), input_size=784, num_classes=10, norm=None, dropout=0.0, reg=0.0,
           weight_scale=1e-2, momentum=0.9):
    """cs231n's FullyConnectedNet: len(hidden_dims) hidden layers of those widths.

    W{i} = weight_scale * randn, b{i} = 0; norm "batchnorm" or "layernorm" adds gamma{i} = 1,
    beta{i} = 0 after every hidden affine layer (with batch norm the hidden affine layers have
    no bias: it would have no effect); dropout = the probability of dropping each hidden unit
    in training (0: no dropout).
    """
    hidden_dims = checks.counts("fc_net", "hidden_dims", hidden_dims, allow_empty=True)
    _check("fc_net", norm, dropout, momentum, input_size, num_classes, reg, weight_scale)
    if weight_scale is None:
        raise ValueError("fc_net: weight_scale must be a finite number > 0, got None")
    dims = (input_size, *hidden_dims, num_classes)
    config = {"hidden_dims": list(hidden_dims), "input_size": input_size, "num_classes": num_classes,
              "norm": norm, "dropout": dropout, "reg": reg, "weight_scale": weight_scale, "momentum": momentum}
    stages = fc_net_stages(hidden_dims, norm, dropout)
    widths = {i: h for i, h in enumerate(hidden_dims, 1)} if norm else {}
    dropout_shapes = {i: (h,) for i, h in enumerate(hidden_dims, 1)} if dropout else {}

    def init(key):
        keys = jax.random.split(key, len(dims) - 1)
        params = {}
        for i, (k, d_in, d_out) in enumerate(zip(keys, dims[:-1], dims[1:]), 1):
            params[f"W{i}"] = weight_scale * jax.random.normal(k, (d_in, d_out))
            if norm != "batchnorm" or i == len(dims) - 1:
                params[f"b{i}"] = jnp.zeros(d_out)
            if norm and i < len(dims) - 1:
                params[f"gamma{i}"], params[f"beta{i}"] = jnp.ones(d_out), jnp.zeros(d_out)
        return params

    return _model("fc_net", config, stages, init, (input_size,), num_classes, reg, momentum, widths,
                  dropout_shapes)


@register_model("deep_conv")
def deep_conv_net(input_shape=(1, 28, 28), filters=(32, 64), filter_size=3, hidden=256, num_classes=10,
                  batchnorm=True, dropout=0.5, reg=0.0, weight_scale=None, momentum=0.9):
    """K conv blocks (filter_size x filter_size, stride 1, "same" padding, then a 2x2 max pool
    of stride 2) with `filters[k]` filters each, then one hidden affine layer of `hidden`
    units. weight_scale None: He initialisation, sqrt(2 / fan_in) randn per layer (the
    documents give none for CNNs); a number: weight_scale * randn. Biases 0 (none before a
    batch norm), gammas 1."""
    filters = checks.counts("deep_conv_net", "filters", filters)
    _check("deep_conv_net", "batchnorm" if batchnorm else None, dropout, momentum, None, num_classes, reg,
           weight_scale)
    checks.count("deep_conv_net", "hidden", hidden)
    checks.count("deep_conv_net", "filter_size", filter_size)
    input_shape = checks.image_shape("deep_conv_net", input_shape)
    if filter_size % 2 != 1:
        raise ValueError(f"deep_conv_net: filter_size must be odd (same padding), got {filter_size}")
    c, h, w = input_shape
    for _ in filters:
        h, w = h // 2, w // 2
    if min(h, w) < 1:
        raise ValueError(f"deep_conv_net: input {tuple(input_shape)} too small for {len(filters)} 2x2 pools")
    flat = filters[-1] * h * w
    config = {"input_shape": list(input_shape), "filters": list(filters), "filter_size": filter_size,
              "hidden": hidden, "num_classes": num_classes, "batchnorm": batchnorm, "dropout": dropout,
              "reg": reg, "weight_scale": weight_scale, "momentum": momentum}
    stages = deep_conv_stages(len(filters), filter_size, batchnorm, dropout)
    k = len(filters) + 1
    widths = {**{i: f for i, f in enumerate(filters, 1)}, k: hidden} if batchnorm else {}
    shapes = [(f, c_in, filter_size, filter_size) for f, c_in in zip(filters, (c, *filters[:-1]))]
    shapes += [(flat, hidden), (hidden, num_classes)]

    def init(key):
        params = {}
        for i, (kk, shape) in enumerate(zip(jax.random.split(key, len(shapes)), shapes), 1):
            fan_in = math.prod(shape[1:]) if len(shape) == 4 else shape[0]
            scale = math.sqrt(2.0 / fan_in) if weight_scale is None else weight_scale
            params[f"W{i}"] = scale * jax.random.normal(kk, shape)
            if i not in widths:
                params[f"b{i}"] = jnp.zeros(shape[0] if len(shape) == 4 else shape[1])
            if i in widths:
                params[f"gamma{i}"], params[f"beta{i}"] = jnp.ones(widths[i]), jnp.zeros(widths[i])
        return params

    return _model("deep_conv", config, stages, init, input_shape, num_classes, reg, momentum, widths,
                  {k: (hidden,)} if dropout else {}, conv_filters="W1")
