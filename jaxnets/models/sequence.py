"""Sequence models built from the hand-written recurrent ops (cs231n assignment 3's layers):

    char_lm:  tokens (N, T) - word embedding - RNN / LSTM / GRU - temporal affine
              - temporal softmax loss over the steps whose target is >= 0
    row_lstm: an image (C, H, W) read row by row, H steps of C*W inputs - RNN / LSTM / GRU
              - the last hidden state - affine - softmax loss

Both start from h0 = 0 (and the LSTM from c0 = 0) and have the one Model signature; neither
has state or dropout. Both are stage lists (`netspec.networks`) run by `jaxnets.models.stages`,
as the deep nets are; the recurrent cell is a config field, a stage kind of `netspec.stages`
(its pair, parameters, gates and initial state declared there once, for the NumPy twin too).

The language model's targets are per time step, a target < 0 meaning "no target" (padding):
the loss mask is y >= 0 (`jaxnets.data.text` pads that way). Its training loss is the mean
cross-entropy PER TOKEN of the batch: cs231n's temporal_softmax_loss (summed over time steps,
averaged over the N sequences) times N / (number of targets in the batch), a constant factor
the manual backward applies to dscores too. So the loss is nats per character, comparable
across batches of different lengths and with PyTorch's CrossEntropyLoss(ignore_index=-1).
"""
from __future__ import annotations

import math
import jax
import jax.numpy as jnp
import numpy as np

from jaxnets.models import checks
from jaxnets.models import stages as S
from jaxnets.models.base import Model, register_model
from jaxnets.programs import program_cache
from jaxnets.ops import AUTODIFF, softmax_loss, temporal_softmax_loss
from netspec.networks import char_lm_stages, row_lstm_stages
from netspec.stages import CELLS, KINDS


def _cell(where, cell):
    if cell not in CELLS:
        raise ValueError(f"{where}: cell must be one of {', '.join(CELLS)}, got {cell!r}")
    return KINDS[cell]


def _recurrent_init(key, cell, d, hidden):
    """Wx ~ N(0, 1/D), Wh ~ N(0, 1/H) (cs231n's CaptioningRNN), biases 0."""
    kx, kh = jax.random.split(key)
    g = cell.gates * hidden
    params = {"Wx": jax.random.normal(kx, (d, g)) / math.sqrt(d), "Wh": jax.random.normal(kh, (hidden, g)) / math.sqrt(hidden)}
    params.update({b: jnp.zeros(g) for b in cell.params[2:]})
    return params


# ----------------------------------------------------------------------------- character LM

def target_mask(y):
    """The steps that have a target: y >= 0."""
    return y >= 0


def per_token_scale(mask, dtype):
    """N / (number of targets), in `dtype`: cs231n's per-sequence loss times this is the
    per-token mean."""
    return mask.shape[0] / jnp.maximum(jnp.sum(mask), 1).astype(dtype)


@register_model("char_lm")
def char_lm(vocab_size=27, seq_len=12, embed=16, hidden=64, cell="lstm"):
    """A character-level language model (Karpathy's char-rnn, cs231n's CaptioningRNN without
    the image): W_embed (V, E) ~ N(0, 1), the cell's Wx (E, G*H), Wh (H, G*H), biases, and
    W_vocab (H, V) ~ N(0, 1/H), b_vocab = 0. Inputs: token ids (N, seq_len) in 0..V-1;
    targets (N, seq_len) in 0..V-1, or < 0 for no target."""
    where = "char_lm"
    vocab_size = checks.count(where, "vocab_size", vocab_size, 2)
    seq_len = checks.count(where, "seq_len", seq_len)
    embed, hidden = checks.count(where, "embed", embed), checks.count(where, "hidden", hidden)
    kind = _cell(where, cell)
    config = {"vocab_size": vocab_size, "seq_len": seq_len, "embed": embed, "hidden": hidden, "cell": cell}
    stages = char_lm_stages(cell)

    def init(key):
        ke, kr, kv = jax.random.split(key, 3)
        return {"W_embed": jax.random.normal(ke, (vocab_size, embed)), **_recurrent_init(kr, kind, embed, hidden),
                "W_vocab": jax.random.normal(kv, (hidden, vocab_size)) / math.sqrt(hidden),
                "b_vocab": jnp.zeros(vocab_size)}

    def scores(params, x, layers=AUTODIFF, state=None):
        return S.forward(stages, params, x, layers)[0]

    def loss(params, state, x, y, key=None, layers=AUTODIFF):
        mask = target_mask(y)
        value = layers.temporal_softmax_loss(scores(params, x, layers), jnp.maximum(y, 0), mask)
        return value * per_token_scale(mask, value.dtype), state

    def loss_and_grads(params, state, x, y, key=None, layout=None):
        out, tape, _ = S.manual_forward(stages, params, x)
        mask = target_mask(y)
        value, dout = temporal_softmax_loss(out, jnp.maximum(y, 0), mask)
        scale = per_token_scale(mask, value.dtype)
        return value * scale, S.manual_backward(stages, params, tape, dout * scale), state

    def predict(params, x, state=None):
        return jnp.argmax(scores(params, x), axis=-1)

    return Model(where, config, init, scores, loss, loss_and_grads, predict, input_shape=(seq_len,),
                 num_classes=vocab_size, token_inputs=True, label_shape=(seq_len,))


def token_nll(model, params, x, y, batch=1000):
    """(summed negative log-likelihood in nats, number of targets) of the targets y >= 0 of
    the sequences x under `model` (a char_lm), `batch` sequences per jitted forward pass.
    Loss per character = sum / count; perplexity = exp(sum / count). The last batch is padded
    with sequences without targets, so one program serves every set."""
    fn = _nll_program(model)
    x, y = np.asarray(x), np.asarray(y)
    batch = min(batch, len(x))
    pad = -len(x) % batch
    x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
    y = np.concatenate([y, np.full((pad, *y.shape[1:]), -1, y.dtype)])
    total, count = 0.0, 0
    for i in range(0, len(x), batch):
        s, c = fn(params, jnp.asarray(x[i:i + batch]), jnp.asarray(y[i:i + batch]))
        total, count = total + float(s), count + int(c)
    return total, count


@program_cache
def _nll_program(model):
    def nll(params, x, y):
        logp = jax.nn.log_softmax(model.scores(params, x), axis=-1)
        mask = target_mask(y)
        picked = jnp.take_along_axis(logp, jnp.maximum(y, 0)[..., None], axis=-1)[..., 0]
        return -jnp.sum(jnp.where(mask, picked, 0)), jnp.sum(mask)

    return jax.jit(nll)


def sample(model, params, key, prefix=(), temperature=1.0, max_len=None):
    """Tokens drawn from a char_lm after the boundary token 0 and `prefix` (token ids 1..V-1),
    one at a time from softmax(scores / temperature), until the boundary is drawn or the
    sequence holds `max_len` tokens (default the model's seq_len). Returns the drawn tokens
    (without the prefix and the final boundary). temperature > 0; smaller is greedier."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"sample: temperature must be a finite number > 0, got {temperature!r}")
    max_len = model.input_shape[0] if max_len is None else int(max_len)
    prefix = [int(t) for t in prefix]
    if any(not 1 <= t < model.num_classes for t in prefix):
        raise ValueError(f"sample: prefix tokens must lie in 1..{model.num_classes - 1}, got {prefix}")
    if len(prefix) + 1 >= max_len:
        raise ValueError(f"sample: a prefix of {len(prefix)} tokens leaves nothing to draw in {max_len} steps")
    tokens = np.zeros((1, max_len), np.int32)
    tokens[0, 1:len(prefix) + 1] = prefix
    step = _sample_program(model)
    drawn = []
    for t in range(len(prefix), max_len):
        # the model is causal: the padding after step t does not change its scores at step t
        nxt = int(step(params, jnp.asarray(tokens), t, jax.random.fold_in(key, t), temperature))
        if nxt == 0:
            break
        drawn.append(nxt)
        if t + 1 < max_len:
            tokens[0, t + 1] = nxt
    return drawn


@program_cache
def _sample_program(model):
    def step(params, tokens, t, key, temperature):
        logits = model.scores(params, tokens)[0, t]
        return jax.random.categorical(key, logits / temperature)

    return jax.jit(step)


# ----------------------------------------------------------------------------- row-by-row images

@register_model("row_lstm")
def row_lstm(input_shape=(1, 28, 28), hidden=128, num_classes=10, cell="lstm"):
    """Sequence classification of an image (C, H, W): step t reads row t (the C*W values of
    all channels), the class scores are an affine map of the last hidden state. The cell's
    Wx (C*W, G*H), Wh (H, G*H), biases; W_out (H, classes) ~ N(0, 1/H), b_out = 0."""
    where = "row_lstm"
    input_shape = checks.image_shape(where, input_shape)
    hidden = checks.count(where, "hidden", hidden)
    num_classes = checks.count(where, "num_classes", num_classes, 2)
    kind = _cell(where, cell)
    c, rows, width = input_shape
    config = {"input_shape": list(input_shape), "hidden": hidden, "num_classes": num_classes, "cell": cell}
    stages = row_lstm_stages(cell)

    def as_rows(x):
        """(N, C, H, W) -> (N, H, C*W): row t of every channel is step t's input."""
        return jnp.swapaxes(x, 1, 2).reshape(x.shape[0], rows, c * width)

    def init(key):
        kr, ko = jax.random.split(key)
        return {**_recurrent_init(kr, kind, c * width, hidden),
                "W_out": jax.random.normal(ko, (hidden, num_classes)) / math.sqrt(hidden),
                "b_out": jnp.zeros(num_classes)}

    def scores(params, x, layers=AUTODIFF, state=None):
        return S.forward(stages, params, as_rows(x), layers)[0]

    def loss(params, state, x, y, key=None, layers=AUTODIFF):
        return layers.softmax_loss(scores(params, x, layers), y), state

    def loss_and_grads(params, state, x, y, key=None, layout=None):
        out, tape, _ = S.manual_forward(stages, params, as_rows(x))
        value, dout = softmax_loss(out, y)
        return value, S.manual_backward(stages, params, tape, dout), state

    def predict(params, x, state=None):
        return jnp.argmax(scores(params, x), axis=1)

    return Model(where, config, init, scores, loss, loss_and_grads, predict, input_shape=input_shape,
                 num_classes=num_classes)
