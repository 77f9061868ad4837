"""A tiny decoder-only transformer language model (GPT's arrangement of Vaswani et al. 2017,
cs231n assignment 3's transformer without the image), from the hand-written attention pairs:

    transformer_lm: tokens (N, T) - word embedding + learned positional embedding
                    - `blocks` pre-norm transformer blocks, causal self-attention
                    - final layer norm - temporal affine - temporal softmax loss per token

It is a stage list (`netspec.networks.transformer_lm_stages`) run by `jaxnets.models.stages`,
as the other sequence models; it has the one Model signature, no state and no dropout. Targets are per step, < 0 meaning
no target, and the loss is the mean cross-entropy per token exactly as char_lm's
(`sequence.target_mask`, `sequence.per_token_scale`), so `token_nll` and `sample` serve both
models. The causal mask makes the scores at step t depend on tokens 0..t only; a sequence
shorter than seq_len takes the first positional rows, so sampling works on any prefix.
"""
import math
from functools import partial

import jax
import jax.numpy as jnp

from jaxnets.models import checks
from jaxnets.models import stages as S
from jaxnets.models.base import Model, register_model
from jaxnets.models.sequence import per_token_scale, target_mask
from jaxnets.programs import program_cache
from jaxnets.ops import (AUTODIFF, TRANSFORMER_BLOCK_PARAMS, positional_embedding_forward, temporal_affine_forward,
                         temporal_layernorm_forward, temporal_softmax_loss, transformer_block_forward,
                         word_embedding_forward)
from jaxnets.ops.attention import ACTIVATIONS, masked_softmax, split_heads, visible_keys
from netspec.networks import EPS, transformer_lm_stages

#: layer norm's epsilon, the blocks' and the final one's (PyTorch's default)
LN_EPS = EPS


def block_keys(i):
    """The parameter names of block i, in transformer_block_forward's argument order
    (`Wq_0`, `ln1_gamma_0`, ...)."""
    return tuple(f"{name}_{i}" for name in TRANSFORMER_BLOCK_PARAMS)


@register_model("transformer_lm")
def transformer_lm(vocab_size=27, seq_len=12, dim=64, heads=4, blocks=2, ffn=256, activation="gelu"):
    """A decoder-only transformer language model: W_embed (V, D) ~ N(0, 1), W_pos (T, D) ~
    N(0, 1), per block the TRANSFORMER_BLOCK_PARAMS suffixed `_i` (Wq, Wk, Wv, Wo (D, D) and
    W1 (D, F) ~ N(0, 1/fan_in), W2 (F, D) ~ N(0, 1/F), biases 0, layer norms gamma 1, beta 0),
    the final layer norm lnf_gamma, lnf_beta, and W_vocab (D, V) ~ N(0, 1/D), b_vocab = 0.
    Inputs: token ids (N, t <= seq_len) in 0..V-1; targets (N, t) in 0..V-1, or < 0 for none.
    `dim` must be divisible by `heads`; the MLP is `ffn` wide with `activation` (relu, gelu)."""
    where = "transformer_lm"
    vocab_size = checks.count(where, "vocab_size", vocab_size, 2)
    seq_len = checks.count(where, "seq_len", seq_len)
    dim, heads = checks.count(where, "dim", dim), checks.count(where, "heads", heads)
    blocks, ffn = checks.count(where, "blocks", blocks), checks.count(where, "ffn", ffn)
    if dim % heads:
        raise ValueError(f"{where}: dim must be divisible by heads, got dim={dim}, heads={heads}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"{where}: activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    config = {"vocab_size": vocab_size, "seq_len": seq_len, "dim": dim, "heads": heads, "blocks": blocks,
              "ffn": ffn, "activation": activation}
    stages = transformer_lm_stages(blocks, heads, activation)
    shapes = {"Wq": (dim, dim), "Wk": (dim, dim), "Wv": (dim, dim), "Wo": (dim, dim), "W1": (dim, ffn),
              "W2": (ffn, dim)}

    def init(key):
        ke, kp, kv, *kb = jax.random.split(key, 3 + blocks)
        params = {"W_embed": jax.random.normal(ke, (vocab_size, dim)), "W_pos": jax.random.normal(kp, (seq_len, dim))}
        for i in range(blocks):
            wkeys = iter(jax.random.split(kb[i], len(shapes)))
            for name, key_name in zip(TRANSFORMER_BLOCK_PARAMS, block_keys(i)):
                if name in shapes:
                    fan_in = shapes[name][0]
                    params[key_name] = jax.random.normal(next(wkeys), shapes[name]) / math.sqrt(fan_in)
                else:  # a bias, or a layer norm's gamma / beta
                    width = ffn if name == "b1" else dim
                    params[key_name] = (jnp.ones if name.endswith("gamma") else jnp.zeros)(width)
        params.update({"lnf_gamma": jnp.ones(dim), "lnf_beta": jnp.zeros(dim),
                       "W_vocab": jax.random.normal(kv, (dim, vocab_size)) / math.sqrt(dim),
                       "b_vocab": jnp.zeros(vocab_size)})
        return params

    def check_length(x):
        """Token ids (N, t) with t <= seq_len (the positions it has embeddings for)."""
        if x.ndim != 2 or x.shape[1] > seq_len:
            raise ValueError(f"{where}: token ids must be (N, t) with t <= seq_len = {seq_len} (the positions it has "
                             f"embeddings for), got shape {x.shape}")
        return x

    def scores(params, x, layers=AUTODIFF, state=None):
        return S.forward(stages, params, check_length(x), layers)[0]

    def loss(params, state, x, y, key=None, layers=AUTODIFF):
        mask = target_mask(y)
        value = layers.temporal_softmax_loss(scores(params, x, layers), jnp.maximum(y, 0), mask)
        return value * per_token_scale(mask, value.dtype), state

    def loss_and_grads(params, state, x, y, key=None, layout=None):
        out, tape, _ = S.manual_forward(stages, params, check_length(x))
        mask = target_mask(y)
        value, dout = temporal_softmax_loss(out, jnp.maximum(y, 0), mask)
        scale = per_token_scale(mask, value.dtype)
        return value * scale, S.manual_backward(stages, params, tape, dout * scale), state

    def predict(params, x, state=None):
        return jnp.argmax(scores(params, x), axis=-1)

    return Model(where, config, init, scores, loss, loss_and_grads, predict, input_shape=(seq_len,),
                 num_classes=vocab_size, token_inputs=True, label_shape=(seq_len,))


def attention_maps(model, params, x):
    """The attention weights p of every block for token ids x (N, t): (blocks, N, heads, t, t),
    p[b, n, h, i, j] = how much query i attends to key j in head h of block b (0 for j > i).
    One jitted program per model (`jaxnets.programs`)."""
    return _maps_program(model)(params, jnp.asarray(x))


@program_cache
def _maps_program(model):
    return jax.jit(partial(_attention_maps, model.config))


def _attention_maps(cfg, params, x):
    h = positional_embedding_forward(word_embedding_forward(x, params["W_embed"])[0], params["W_pos"])[0]
    maps = []
    for i in range(cfg["blocks"]):
        args = [params[k] for k in block_keys(i)]
        a = temporal_layernorm_forward(h, args[0], args[1], eps=LN_EPS)[0]
        q = split_heads(temporal_affine_forward(a, args[2], args[3])[0], cfg["heads"])
        k = split_heads(temporal_affine_forward(a, args[4], args[5])[0], cfg["heads"])
        s = (q / math.sqrt(q.shape[-1])) @ jnp.swapaxes(k, -1, -2)
        maps.append(masked_softmax(s, visible_keys(None, True, x.shape[1], x.shape[1])))
        h = transformer_block_forward(h, *args, cfg["heads"], None, True, cfg["activation"])[0]
    return jnp.stack(maps)
