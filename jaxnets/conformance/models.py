"""The models the equivalence suite checks: their variants, batch sizes, stress inputs and the
deterministic cases (`make_model_case`), with finite differences only where every ReLU input
and max-pool tie gap stays clear of the steps (`kink_distance`).

A new model: its `MODEL_SPECS` entry here (configurations to check and how to stress it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import jax
import numpy as np

from jaxnets import ops
from jaxnets.models import MODELS
from jaxnets.conformance.builtin import dropout_key, noise
from jaxnets.gradcheck.case import Case
from jaxnets.conformance.specs.pool import window_gap
from jaxnets.gradcheck.tolerances import FD_STEP, GRAD_SCALE_FLOOR
from reference_numpy import models as npm


@dataclass(frozen=True)
class ModelSpec:
    """How to check one model.

    variants: name -> config. "document" = the documents' sizes and initialisation, with
        realistic inputs (analytic checks only: gradients from 0.01- and 1e-4-scale weights
        are ~1e-8, below what finite differences of an O(1) loss resolve to 1e-6); the others
        are small, with random O(1) parameters (biases included), and also get finite
        differences.
    batch: variant -> batch size (a ConvNet's are small so that kink-free draws — every ReLU
        input and pool gap clear of FD's reach — stay likely).
    stress: "saturate" (half the hidden biases at +-40: tanh units exactly +-1, gradient
        exactly 0) or "kinks" (sparse small integer inputs and first-layer weights with zero
        bias: ReLU inputs exactly 0, ties in pool windows).
    stress_density: fraction of non-zero stress inputs; None: ~16 per first-layer unit.
    document_inputs: "features" (N(0, 1)), "pixels" (mostly 0, else in [0, 1)) or
        "centred_pixels" (pixels - 0.1, as after 002's mean-image subtraction).
    saturated: the bias "saturate" sets to +-40 (a recurrent model's gates: sigmoid and tanh
        exactly 0 or 1).
    output: the last layer's (weight, bias), scaled down so scores stay below
        SCORE_SPREAD_MAX; None: the highest-numbered W and b.
    scale_floor: as `OpSpec.scale_floor`, for a model with a gradient that is exactly 0 in
        exact arithmetic (the transformer's key bias: a softmax does not see a constant added
        to every score of a row, so dbk is rounding of O(|ds| |q|) terms, ~1e-18): entries are
        compared at least at this fraction of the case's gradient scale; None: cs231n's plain
        relative error.
    A model with token inputs gets random token ids; one with per-step labels gets random
    targets with a random padded tail (target -1) per row.
    """

    variants: dict
    batch: dict
    stress: str = "kinks"
    stress_density: float | None = None
    document_inputs: str = "pixels"
    saturated: str = "b1"
    output: tuple | None = None
    scale_floor: float | None = None


MODEL_SPECS = {
    "occupancy": ModelSpec({"document": {}, "small": {"hidden": 3, "n_features": 4}},
                           {"document": 8, "small": 5}, stress="saturate", document_inputs="features"),
    "digits": ModelSpec({"document": {}, "small": {"hidden": 6, "input_size": 12, "num_classes": 4}},
                        {"document": 8, "small": 5}),
    "two_layer": ModelSpec({
        "document": {"hidden_size": 50, "reg": 0.5},
        "small": {"input_size": 12, "hidden_size": 7, "num_classes": 5, "reg": 0.3},
    }, {"document": 8, "small": 5}, document_inputs="centred_pixels"),
    "conv": ModelSpec({
        "document": {},
        "small": {"input_shape": (2, 6, 6), "num_filters": 3, "filter_size": 3, "stride": 1, "pad": 1,
                  "pool": 2, "num_classes": 4, "reg": 0.1},
        "strided": {"input_shape": (3, 7, 8), "num_filters": 2, "filter_size": 2, "stride": 2, "pad": 0,
                    "pool": 2, "num_classes": 3},
    }, {"document": 4, "small": 2, "strided": 3}, stress_density=1.0),
    "fc_net": ModelSpec({
        "batchnorm": {"hidden_dims": [7, 6], "input_size": 5, "num_classes": 4, "norm": "batchnorm",
                      "dropout": 0.3, "reg": 0.1},
        "layernorm": {"hidden_dims": [6, 5], "input_size": 5, "num_classes": 3, "norm": "layernorm", "reg": 0.05},
        "dropout": {"hidden_dims": [8, 6, 5], "input_size": 4, "num_classes": 3, "dropout": 0.5},
    }, {"batchnorm": 5, "layernorm": 5, "dropout": 6}),
    "deep_conv": ModelSpec({
        "small": {"input_shape": (2, 8, 8), "filters": (3, 4), "hidden": 5, "num_classes": 4, "dropout": 0.3,
                  "reg": 0.05},
        "plain": {"input_shape": (1, 6, 6), "filters": (2,), "hidden": 4, "num_classes": 3, "batchnorm": False,
                  "dropout": 0.0},
    }, {"small": 3, "plain": 2}, stress_density=1.0),
    "char_lm": ModelSpec({
        "lstm": {"vocab_size": 6, "seq_len": 5, "embed": 3, "hidden": 4, "cell": "lstm"},
    }, {"lstm": 4}, stress="saturate", saturated="b", output=("W_vocab", "b_vocab")),
    # the GRU cell (two biases) here, the LSTM in char_lm: every cell kind's model path once
    # (the test budget); the RNN cell is the LSTM's path with one gate
    "row_lstm": ModelSpec({
        "gru": {"input_shape": (2, 4, 3), "hidden": 4, "num_classes": 3, "cell": "gru"},
    }, {"gru": 4}, stress="saturate", saturated="b", output=("W_out", "b_out")),
    # one block with GELU (the softmax, layer norms, attention and MLP backwards all on the
    # path); saturate drives the MLP's GELU to its flat and linear ends
    "transformer_lm": ModelSpec({
        "tiny": {"vocab_size": 5, "seq_len": 4, "dim": 4, "heads": 2, "blocks": 1, "ffn": 6, "activation": "gelu"},
    }, {"tiny": 3}, stress="saturate", saturated="b1_0", output=("W_vocab", "b_vocab"), scale_floor=GRAD_SCALE_FLOOR),
}
MODEL_VARIANTS = {name: spec.variants for name, spec in MODEL_SPECS.items()}
FD_MAX_COORDS_MODEL = 12
_KINK_ATTEMPTS = 40
#: largest spread of a row of scores (a binary model: largest |logit|). Beyond ~15,
#: p - onehot of a confident, correct row cancels (relative accuracy eps / (1 - p)) in every
#: implementation alike, so larger scores compare rounding noise; W2 and b2 are scaled down.
SCORE_SPREAD_MAX = 10.0


class ModelCase(Case):
    """A Case of a model, with its parts named: args are (params, state, x, y, key)."""

    name = property(lambda self: self.tags["model"])
    variant = property(lambda self: self.tags["variant"])
    config = property(lambda self: self.tags["config"])
    params = property(lambda self: self.args[0])
    state = property(lambda self: self.args[1])
    x = property(lambda self: self.args[2])
    y = property(lambda self: self.args[3])
    key = property(lambda self: self.args[4])


def config_key(config):
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in config.items()))


@lru_cache(maxsize=64)
def _np_model(name, key):
    return npm.MODELS[name](**dict(key))


@lru_cache(maxsize=64)
def _jax_model(name, key):
    return MODELS[name](**dict(key))


def kink_distance(model, params, x, y, key=None):
    """How far the inputs are from the model's kinks: the smallest |ReLU input| and the
    smallest gap between a max-pool window's positive maximum and its runner-up, found by
    running the training loss (batch statistics, dropout from `key`) with layers that record
    them (so any model built from `jaxnets.ops` layers is covered); inf for a model without
    kinks."""
    found = []

    def relu(a):
        found.append(float(np.min(np.abs(np.asarray(a)))))
        return ops.AUTODIFF.relu(a)

    def max_pool(a, pool_height=2, pool_width=2, stride=2):
        found.append(window_gap(np.asarray(a), pool_height, pool_width, stride))
        return ops.AUTODIFF.max_pool(a, pool_height, pool_width, stride)

    model.loss(params, model.init_state(), x, y, key, ops.AUTODIFF._replace(relu=relu, max_pool=max_pool))
    return min(found, default=math.inf)


def _fd_margin(x):
    # one FD step on a W1 entry moves a ReLU input by at most FD_STEP * max|x| (b1: FD_STEP);
    # a factor 4 leaves room for a tie gap closing from both sides.
    return 4.0 * FD_STEP * max(1.0, float(np.max(np.abs(x))))


def _cap_scores(name, config, params, x, model, key):
    """Scale the last layer's weights and bias (in place) so that no row of (training-mode)
    scores spreads more than SCORE_SPREAD_MAX."""
    np_model = _np_model(name, config_key(config))
    spec = MODEL_SPECS[name]
    if spec.output is None:
        last = max(int(k[1:]) for k in params if k.startswith("W"))
        weight, bias = f"W{last}", f"b{last}"
    else:
        weight, bias = spec.output
    if model.stateful or model.stochastic:  # batch statistics and dropout, as trained
        scores = np_model.scores(params, x, train=True, **noise(model, key, x.shape[0]))
    else:
        scores = np_model.scores(params, x)
    spread = float(np.max(np.abs(scores))) if scores.ndim == 1 else float(np.max(np.ptp(scores, axis=-1)))
    if spread > SCORE_SPREAD_MAX:
        params[weight] = params[weight] * (SCORE_SPREAD_MAX / spread)
        params[bias] = params[bias] * (SCORE_SPREAD_MAX / spread)


def _inputs(spec, variant, rng, shape, model):
    if model.token_inputs:
        return rng.integers(0, model.num_classes, shape).astype(np.int32)
    kind = spec.document_inputs if variant == "document" else "features"
    if kind == "features":
        return rng.standard_normal(shape)
    x = np.where(rng.random(shape) < 0.2, rng.random(shape), 0.0)  # pixels: mostly 0, else in [0, 1)
    return x - 0.1 if kind == "centred_pixels" else x


def _labels(rng, model, n):
    """Labels 0..C-1, (n, *label_shape); per-step targets end in a random padded tail (-1)."""
    y = rng.integers(0, model.num_classes, (n, *model.label_shape))
    if model.label_shape:
        steps = model.label_shape[0]
        lengths = rng.integers(1, steps + 1, n)
        y = np.where(np.arange(steps)[None] < lengths[:, None], y, -1)
    return y


def _stress(spec, params, x, rng):
    """Stress the case in place of params; returns the (new) inputs."""
    if spec.stress == "saturate":
        # half the hidden units saturated exactly (tanh = +-1, gradient exactly 0);
        # not merely large, where 1 - a**2 cancels alike in every implementation
        b = spec.saturated
        h = params[b].shape[0]
        params[b] = np.where(rng.random(h) < 0.5, 40.0 * rng.choice([-1.0, 1.0], h), params[b])
        return x
    density = spec.stress_density or min(1.0, 16.0 / x.shape[1])  # ~16 inputs per first-layer unit
    x = np.where(rng.random(x.shape) < density, rng.integers(-2, 3, x.shape), 0).astype(np.float64)
    params["W1"] = rng.integers(-1, 2, params["W1"].shape).astype(np.float64)
    if "b1" in params:  # (a layer followed by batch norm has none)
        params["b1"] = np.zeros_like(params["b1"])
    betas = sorted((int(k[4:]), k) for k in params if k.startswith("beta"))
    if betas:  # after the first norm, a value equal to its group's mean lands on ReLU's kink
        params[betas[0][1]] = np.zeros_like(params[betas[0][1]])  # (later betas stay < 0, see below)
    return x


def make_model_case(name, variant="small", seed=0, stress=False):
    """A deterministic model Case: args (params, state, x, y, dropout key), the params
    differentiated, cotangent 1 on the loss (0 on the new state), tags naming the model,
    variant, config, seed and stress. "document" variants use the model's own init (documents'
    initialisation); other variants draw every parameter (biases too) from 0.5 * N(0, 1).
    Stress: see `ModelSpec.stress`. Without stress, up to _KINK_ATTEMPTS draws look for
    kink-free inputs so finite differences are valid."""
    spec = MODEL_SPECS[name]
    config = dict(spec.variants[variant])
    key = config_key(config)
    model = _jax_model(name, key)
    n = spec.batch[variant]
    attempts = 1 if stress else _KINK_ATTEMPTS
    for attempt in range(attempts):
        rng = np.random.default_rng([seed, attempt])
        if variant == "document":
            params = {k: np.asarray(v, dtype=np.float64) for k, v in model.init(jax.random.key(seed)).items()}
        else:
            params = {k: 0.5 * rng.standard_normal(np.shape(v))
                      for k, v in _np_model(name, key).init(np.random.default_rng(0)).items()}
            # Norm outputs start below 0, so each ReLU after a norm is off for some rows. Were
            # it on for every row, the next batch norm would cancel the beta's shift and the
            # beta's gradient would be exactly 0: rounding noise no relative error compares.
            params.update({k: v - 1.0 for k, v in params.items() if k.startswith("beta")})
        x = _inputs(spec, variant, rng, (n, *model.input_shape), model)
        y = _labels(rng, model, n)
        if model.binary:
            y = y.astype(np.float64)
        if stress:
            x = _stress(spec, params, x, rng)
        _cap_scores(name, config, params, x, model, dropout_key(seed))
        dist = kink_distance(model, params, x, y, dropout_key(seed))
        fd_ok = not stress and variant != "document" and dist > _fd_margin(x)
        if fd_ok or stress:
            break
    state = {k: np.asarray(v, np.float64) for k, v in model.init_state().items()}
    label = f"{name}/{variant} seed={seed}{' stress' if stress else ''}"
    tags = {"model": name, "variant": variant, "config": config, "seed": int(seed), "stress": bool(stress),
            "kink_distance": dist}
    cotangent = [np.asarray(1.0)] + [np.zeros_like(state[k]) for k in sorted(state)]
    return ModelCase(0, (params, state, x, y, dropout_key(seed)), {}, cotangent, tags, bool(fd_ok), label)


def model_cases(name, n_per_variant, seed=0):
    """Deterministic model cases for the report: every variant, alternating stress."""
    return [make_model_case(name, variant, seed + i, stress=i % 2 == 1)
            for variant in MODEL_VARIANTS[name] for i in range(n_per_variant)]
