"""The sequence models of `jaxnets.models.sequence` and `jaxnets.models.transformer` in NumPy
float64, built from this package's loop-over-time twins: `char_lm` (embedding - RNN/LSTM/GRU -
temporal affine - temporal softmax loss per token), `row_lstm` (an image read row by row, the
last hidden state classified) and `transformer_lm` (embedding + positions - pre-norm causal
transformer blocks - layer norm - temporal affine - the same loss per token).

Same names, configs and parameter names as jaxnets. The language model's loss is cs231n's
temporal softmax loss times N / (number of targets): the mean per token, targets < 0 masked.
"""
import math

import numpy as np

from netspec.networks import char_lm_stages, row_lstm_stages, transformer_lm_stages
from netspec.stages import KINDS
from reference_numpy.attention import TRANSFORMER_BLOCK_PARAMS
from reference_numpy.layers import softmax_loss
from reference_numpy.sequence import temporal_softmax_loss
from reference_numpy.stages import backward, run


def _recurrent_init(rng, cell, d, hidden):
    g = KINDS[cell].gates * hidden
    params = {"Wx": rng.standard_normal((d, g)) / math.sqrt(d), "Wh": rng.standard_normal((hidden, g)) / math.sqrt(hidden)}
    params.update({b: np.zeros(g) for b in KINDS[cell].params[2:]})
    return params


def _model(name, config, init, scores, loss_and_grads):
    from reference_numpy.models import Model  # models.py lists these twins in its MODELS

    def loss(params, x, y):
        return loss_and_grads(params, x, y)[0]

    def predict(params, x):
        return np.argmax(scores(params, x), axis=-1)

    return Model(name, config, init, scores, loss, loss_and_grads, predict)


def char_lm(vocab_size=27, seq_len=12, embed=16, hidden=64, cell="lstm"):
    config = {"vocab_size": vocab_size, "seq_len": seq_len, "embed": embed, "hidden": hidden, "cell": cell}

    def init(rng):
        return {"W_embed": rng.standard_normal((vocab_size, embed)), **_recurrent_init(rng, cell, embed, hidden),
                "W_vocab": rng.standard_normal((hidden, vocab_size)) / math.sqrt(hidden),
                "b_vocab": np.zeros(vocab_size)}

    stages = char_lm_stages(cell)

    def scores(params, x):
        return run(stages, params, np.asarray(x))[0]

    def loss_and_grads(params, x, y):
        out, tape, _ = run(stages, params, np.asarray(x))
        y = np.asarray(y)
        mask = y >= 0
        value, dout = temporal_softmax_loss(out, np.maximum(y, 0), mask)
        scale = y.shape[0] / max(int(mask.sum()), 1)
        return value * scale, backward(stages, params, tape, dout * scale)

    return _model("char_lm", config, init, scores, loss_and_grads)


def row_lstm(input_shape=(1, 28, 28), hidden=128, num_classes=10, cell="lstm"):
    c, rows_, width = input_shape
    config = {"input_shape": list(input_shape), "hidden": hidden, "num_classes": num_classes, "cell": cell}

    def init(rng):
        return {**_recurrent_init(rng, cell, c * width, hidden),
                "W_out": rng.standard_normal((hidden, num_classes)) / math.sqrt(hidden), "b_out": np.zeros(num_classes)}

    stages = row_lstm_stages(cell)

    def rows(x):
        x = np.asarray(x, np.float64)
        return np.swapaxes(x, 1, 2).reshape(x.shape[0], rows_, c * width)

    def scores(params, x):
        return run(stages, params, rows(x))[0]

    def loss_and_grads(params, x, y):
        out, tape, _ = run(stages, params, rows(x))
        value, dout = softmax_loss(out, np.asarray(y))
        return value, backward(stages, params, tape, dout)

    return _model("row_lstm", config, init, scores, loss_and_grads)


def transformer_lm(vocab_size=27, seq_len=12, dim=64, heads=4, blocks=2, ffn=256, activation="gelu"):
    config = {"vocab_size": vocab_size, "seq_len": seq_len, "dim": dim, "heads": heads, "blocks": blocks,
              "ffn": ffn, "activation": activation}
    keys = [tuple(f"{name}_{i}" for name in TRANSFORMER_BLOCK_PARAMS) for i in range(blocks)]
    shapes = {"Wq": (dim, dim), "Wk": (dim, dim), "Wv": (dim, dim), "Wo": (dim, dim), "W1": (dim, ffn),
              "W2": (ffn, dim)}

    def init(rng):
        params = {"W_embed": rng.standard_normal((vocab_size, dim)), "W_pos": rng.standard_normal((seq_len, dim))}
        for i in range(blocks):
            for name, key in zip(TRANSFORMER_BLOCK_PARAMS, keys[i]):
                if name in shapes:
                    params[key] = rng.standard_normal(shapes[name]) / math.sqrt(shapes[name][0])
                else:
                    width = ffn if name == "b1" else dim
                    params[key] = (np.ones if name.endswith("gamma") else np.zeros)(width)
        params.update({"lnf_gamma": np.ones(dim), "lnf_beta": np.zeros(dim),
                       "W_vocab": rng.standard_normal((dim, vocab_size)) / math.sqrt(dim),
                       "b_vocab": np.zeros(vocab_size)})
        return params

    stages = transformer_lm_stages(blocks, heads, activation)

    def scores(params, x):
        return run(stages, params, np.asarray(x))[0]

    def loss_and_grads(params, x, y):
        out, tape, _ = run(stages, params, np.asarray(x))
        y = np.asarray(y)
        mask = y >= 0
        value, dout = temporal_softmax_loss(out, np.maximum(y, 0), mask)
        scale = y.shape[0] / max(int(mask.sum()), 1)
        return value * scale, backward(stages, params, tape, dout * scale)

    return _model("transformer_lm", config, init, scores, loss_and_grads)
