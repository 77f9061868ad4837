"""Op specs for the sequence layers (issue 20): RNN, LSTM and GRU steps and sequences, word
embeddings, the temporal affine layer and softmax loss, the GELU, attention, multi-head
attention and the pre-norm transformer block, in `op_specs.OPS` with the others; they use what
`OpSpec` has for them: several outputs (`n_out`), array inputs without a gradient (`no_grad`)
and a scale floor where a gradient is exactly 0 in exact arithmetic (`scale_floor`).

Stress inputs, per layer:
- recurrent layers: saturated gates (bias entries of +-[50, 400], so sigmoid and tanh round to
  exactly 0, +-1 and their derivatives to 0 or an exact tiny value); the LSTM's units saturate in
  two safe patterns, "remember" (i = 0, f = 1: c carried unchanged) and "overwrite" (i = 1,
  f = 0): with f = i = 1 the cell would grow by 1 per step into the zone where 1 - tanh(c)^2
  cancels (~eps / (1 - tanh^2) between correct codes). The GRU's candidate n is not
  saturated: at n = +-1 with z between 0 and 1, h converges to n geometrically and the h - n
  of dz cancels the same way over a long sequence. Pre-activations between ~8 and ~37 are
  avoided for the same reason (weights scaled 1 / sqrt(fan-in)). Long sequences (T = 20-30)
  are edge geometries;
- word embeddings: repeated indices (a vocabulary of 1-3 words, or one word everywhere);
- temporal softmax loss: fully masked sequences, and scores around 1000 with ties and gaps
  below the maximum of < 8 or > 40 (as the softmax loss's stress in `op_specs`);
- GELU: the tails, |x| in [3, 20];
- attention, multi-head attention, the block: fully masked query rows (a query that may see no
  key: out = 0, no gradient), on top of the causal and padding masks of the geometry.
"""
from __future__ import annotations

import numpy as np

from jaxnets import ops
from jaxnets.conformance.opspec import OpSpec
from jaxnets.gradcheck.tolerances import GRAD_SCALE_FLOOR, KINK_MARGIN
from reference_numpy import layers as npl

_ATTEMPTS = 20
#: saturated pre-activations: sigmoid / tanh round to exactly 0, 1 or +-1 beyond ~37
SATURATED = (50.0, 400.0)


def _weight(rng, fan_in, shape):
    return rng.standard_normal(shape) / np.sqrt(max(fan_in, 1))


def _saturate(rng, b, fraction=0.5):
    """b with a `fraction` of its entries replaced by +-SATURATED values."""
    big = rng.uniform(*SATURATED, b.shape) * rng.choice([-1.0, 1.0], b.shape)
    return np.where(rng.random(b.shape) < fraction, big, b)


# ----------------------------------------------------------------------------- recurrent layers

def _g_step(draw):
    return {"N": draw("N", 1, 3), "D": draw("D", 1, 4), "H": draw("H", 1, 4)}


def _g_seq(draw):
    return {"N": draw("N", 1, 3), "T": draw("T", 1, 6), "D": draw("D", 1, 4), "H": draw("H", 1, 4)}


def _lstm_bias(rng, hidden, stress):
    """b (4H,); stress saturates units in the safe patterns of the module docstring, and o and
    g at random."""
    b = rng.standard_normal(4 * hidden)
    if not stress:
        return b
    i, f, o, g = (b[k * hidden:(k + 1) * hidden] for k in range(4))  # views into b

    def big():
        return rng.uniform(*SATURATED)

    for j in range(hidden):
        mode = rng.integers(0, 3)
        if mode == 1:  # remember: i = 0, f = 1
            i[j], f[j] = -big(), big()
        elif mode == 2:  # overwrite: i = 1, f = 0
            i[j], f[j] = big(), -big()
        if rng.random() < 0.5:
            o[j] = rng.choice([-1.0, 1.0]) * big()
        if rng.random() < 0.5:
            g[j] = rng.choice([-1.0, 1.0]) * big()
    return b


def _recurrent_values(gates, step, n_bias=1, cell=False):
    """Values for a recurrent step (x, prev_h[, prev_c], Wx, Wh, b[, bh]) or sequence
    (x, h0, Wx, Wh, b[, bh]); stress saturates gates through the biases."""

    def values(g, rng, stress):
        n, d, h = g["N"], g["D"], g["H"]
        x = rng.standard_normal((n, d) if step else (n, g["T"], d))
        states = [rng.standard_normal((n, h)) for _ in range(2 if cell else 1)]
        Wx, Wh = _weight(rng, d, (d, gates * h)), _weight(rng, h, (h, gates * h))
        if gates == 4:
            biases = [_lstm_bias(rng, h, stress)]
        else:
            biases = [rng.standard_normal(gates * h) for _ in range(n_bias)]
            if stress:  # the RNN's tanh; the GRU's r and z but not its candidate n (docstring)
                biases[0][:2 * h] = _saturate(rng, biases[0][:2 * h])
        return (x, *states, Wx, Wh, *biases), (), not stress

    return values


# ----------------------------------------------------------------------------- sequence layers

def _g_embedding(draw):
    return {"N": draw("N", 1, 3), "T": draw("T", 1, 5), "V": draw("V", 1, 6), "D": draw("D", 1, 4)}


def _v_embedding(g, rng, stress):
    n, t, v = g["N"], g["T"], g["V"]
    if stress:  # one or two words over and over: every row of dW sums many positions
        x = rng.choice(rng.integers(0, v, 2), (n, t))
    else:
        x = rng.integers(0, v, (n, t))
    return (x, rng.standard_normal((v, g["D"]))), (), True  # linear in W


def _g_temporal_affine(draw):
    return {"N": draw("N", 1, 3), "T": draw("T", 1, 4), "D": draw("D", 1, 4), "M": draw("M", 1, 4)}


def _v_temporal_affine(g, rng, stress):
    shapes = ((g["N"], g["T"], g["D"]), (g["D"], g["M"]), (g["M"],))
    if stress:  # small integers: exact zeros and repeated values (the layer is linear)
        return tuple(rng.integers(-2, 3, s).astype(np.float64) for s in shapes), (), True
    return tuple(rng.standard_normal(s) for s in shapes), (), True


def _g_positions(draw):
    g = {"N": draw("N", 1, 3), "T": draw("T", 1, 4), "D": draw("D", 1, 3)}
    g["P"] = g["T"] + draw("extra", 0, 2)  # more positions than steps: the rows beyond get 0
    return g


def _v_positions(g, rng, stress):
    shapes = ((g["N"], g["T"], g["D"]), (g["P"], g["D"]))
    if stress:  # small integers: exact zeros and repeated values (the layer is linear)
        return tuple(rng.integers(-2, 3, s).astype(np.float64) for s in shapes), (), True
    return tuple(rng.standard_normal(s) for s in shapes), (), True


def _g_last_step(draw):
    return {"N": draw("N", 1, 3), "T": draw("T", 1, 5), "H": draw("H", 1, 4)}


def _v_last_step(g, rng, stress):
    shape = (g["N"], g["T"], g["H"])
    if stress:  # small integers: exact zeros and repeated values (the layer is linear)
        return (rng.integers(-2, 3, shape).astype(np.float64),), (), True
    return (rng.standard_normal(shape),), (), True


def _g_temporal_loss(draw):
    return {"N": draw("N", 1, 3), "T": draw("T", 1, 5), "V": draw("V", 1, 6)}


def _v_temporal_loss(g, rng, stress):
    n, t, v = g["N"], g["T"], g["V"]
    y = rng.integers(0, v, (n, t))
    mask = rng.random((n, t)) < 0.7
    if not stress:
        return (rng.standard_normal((n, t, v)),), (y, mask), True
    mask[rng.integers(0, n)] = False  # one sequence entirely padding
    # scores around 1000 with each row's maximum twice; the gaps below it < 8 or > 40
    top = 1000.0 + 300.0 * rng.standard_normal((n, t, 1))
    near = rng.random((n, t, v)) < 0.5
    s = top - np.where(near, rng.uniform(0.0, 8.0, (n, t, v)), rng.uniform(40.0, 300.0, (n, t, v)))
    for _ in range(2):
        np.put_along_axis(s, rng.integers(0, v, (n, t, 1)), top, axis=-1)
    return (s,), (y, mask), False


# ----------------------------------------------------------------------------- GELU (the block's MLP)

def _g_gelu(draw):
    return {"x": tuple(draw(f"dim{i}", 1, 4) for i in range(draw("ndim", 1, 3)))}


def _v_gelu(g, rng, stress):
    x = rng.standard_normal(g["x"]) * 2.0
    if stress:  # the tails, |x| in [3, 20]: Phi(x) near 0 or 1 (beyond ~26, erfc is subnormal)
        x = np.where(rng.random(x.shape) < 0.6, rng.uniform(3.0, 20.0, x.shape) * np.sign(x), x)
    return (x,), (), True


# ----------------------------------------------------------------------------- attention

#: None; a padding mask (..., 1, Tk) (stress: some sequences all padding); a general mask
#: (..., Tq, Tk); one (Tq, Tk) mask shared by the batch (and heads)
MASK_KINDS = ("none", "padding", "general", "shared")


def _g_attention(draw):
    return {"N": draw("N", 1, 2), "heads": draw("heads", 1, 2), "Tq": draw("Tq", 1, 5), "Tk": draw("Tk", 1, 5),
            "d": draw("d", 1, 4), "dv": draw("dv", 1, 3), "mask": MASK_KINDS[draw("mask kind", 0, 3)],
            "causal": bool(draw("causal", 0, 1))}


def _mask(rng, kind, lead, tq, tk, stress):
    """A boolean mask of `kind` for scores (*lead, tq, tk), True for about 70% of the keys;
    stress hides every key from some query rows (kind "none" then gets a general mask)."""
    if kind == "none" and not stress:
        return None
    if kind == "padding":
        mask = rng.random((*lead, 1, tk)) < 0.7
        if stress:
            mask.reshape(-1, tk)[rng.integers(0, mask.size // tk)] = False  # one sequence all padding
        return mask
    mask = rng.random((tq, tk) if kind == "shared" else (*lead, tq, tk)) < 0.7
    if stress:
        rows = mask.reshape(-1, tq, tk)
        rows[rng.random(rows.shape[:2]) < 0.4] = False
        rows[:, rng.integers(0, tq)] = False  # at least one blind query per batch entry
    return mask


def _v_attention(g, rng, stress):
    lead = (g["N"], g["heads"])
    q = rng.standard_normal((*lead, g["Tq"], g["d"]))
    k = rng.standard_normal((*lead, g["Tk"], g["d"]))
    v = rng.standard_normal((*lead, g["Tk"], g["dv"]))
    return (q, k, v, _mask(rng, g["mask"], lead, g["Tq"], g["Tk"], stress)), (), True


def _g_mha(draw):
    return {"N": draw("N", 1, 2), "Tq": draw("Tq", 1, 4), "Tk": draw("Tk", 1, 4), "Eq": draw("Eq", 1, 4),
            "Ek": draw("Ek", 1, 4), "Ev": draw("Ev", 1, 4), "heads": draw("heads", 1, 3), "dh": draw("dh", 1, 2),
            "dv": draw("dv", 1, 2), "M": draw("M", 1, 3), "mask": MASK_KINDS[draw("mask kind", 0, 3)],
            "causal": bool(draw("causal", 0, 1))}


def _v_mha(g, rng, stress):
    n, tq, tk, hd, hv = g["N"], g["Tq"], g["Tk"], g["heads"] * g["dh"], g["heads"] * g["dv"]
    arrays = (rng.standard_normal((n, tq, g["Eq"])), rng.standard_normal((n, tk, g["Ek"])),
              rng.standard_normal((n, tk, g["Ev"])),
              _weight(rng, g["Eq"], (g["Eq"], hd)), rng.standard_normal(hd),
              _weight(rng, g["Ek"], (g["Ek"], hd)), rng.standard_normal(hd),
              _weight(rng, g["Ev"], (g["Ev"], hv)), rng.standard_normal(hv),
              _weight(rng, hv, (hv, g["M"])), rng.standard_normal(g["M"]))
    return (*arrays, _mask(rng, g["mask"], (n,), tq, tk, stress)), (), True


def _g_block(draw):
    return {"N": draw("N", 1, 2), "T": draw("T", 1, 4), "D": draw("D", 3, 4), "heads": draw("heads", 1, 2),
            "dh": draw("dh", 1, 2), "F": draw("F", 1, 4),
            "causal": bool(draw("causal", 0, 1)), "mask": MASK_KINDS[draw("mask kind", 0, 3)],
            "activation": ("relu", "gelu")[draw("activation", 0, 1)]}


def _v_block(g, rng, stress):
    n, t, d, f, hd = g["N"], g["T"], g["D"], g["F"], g["heads"] * g["dh"]
    for _ in range(_ATTEMPTS):
        params = {"ln1_gamma": rng.standard_normal(d), "ln1_beta": rng.standard_normal(d),
                  "Wq": _weight(rng, d, (d, hd)), "bq": rng.standard_normal(hd),
                  "Wk": _weight(rng, d, (d, hd)), "bk": rng.standard_normal(hd),
                  "Wv": _weight(rng, d, (d, hd)), "bv": rng.standard_normal(hd),
                  "Wo": _weight(rng, hd, (hd, d)), "bo": rng.standard_normal(d),
                  "ln2_gamma": rng.standard_normal(d), "ln2_beta": rng.standard_normal(d),
                  "W1": _weight(rng, d, (d, f)), "b1": rng.standard_normal(f),
                  "W2": _weight(rng, f, (f, d)), "b2": rng.standard_normal(d)}
        arrays = (rng.standard_normal((n, t, d)), *(params[p] for p in ops.TRANSFORMER_BLOCK_PARAMS),
                  _mask(rng, g["mask"], (n,), t, t, stress))
        # finite differences need every ReLU input of the MLP KINK_MARGIN away from 0
        if g["activation"] == "gelu" or np.min(np.abs(_block_mlp_input(arrays, g))) > KINK_MARGIN:
            return arrays, (), True
    return arrays, (), False


def _block_mlp_input(arrays, g):
    """The ReLU's inputs W1 LN2(h) + b1 in the NumPy block (its cache of the activation)."""
    return _np_block(*arrays, *_static_block(g))[1][4]


# ----------------------------------------------------------------------------- wiring
# Arrays first, then the static arguments (the engine's convention); the layers take their
# mask between the two, so these adapters move it.

def _mask_before_static(fn, n_arrays, n_static_before=1):
    """`f(*arrays, mask, *static)` calling `fn(*arrays, *static[:k], mask, *static[k:])`."""

    def f(*args):
        arrays, mask, static = args[:n_arrays], args[n_arrays], args[n_arrays + 1:]
        return fn(*arrays, *static[:n_static_before], mask, *static[n_static_before:])

    return f


_MHA_ARRAYS = 11
_BLOCK_ARRAYS = 17


def _np_block(*args):
    return _mask_before_static(npl.transformer_block_forward, _BLOCK_ARRAYS)(*args)


def _static_attention(g):
    return (g["causal"],)


def _static_mha(g):
    return (g["heads"], g["causal"])


def _static_block(g):
    return (g["heads"], g["causal"], g["activation"])


def _moved(n_arrays):
    return lambda fn: _mask_before_static(fn, n_arrays)


EDGES = {
    "gelu": ({"x": (1, 5)}, {"x": (2, 3, 4)}, {"x": (7,)}),
    "rnn_step": ({"N": 1, "D": 1, "H": 1}, {"N": 3, "D": 4, "H": 2}, {"N": 2, "D": 2, "H": 4}),
    "rnn": ({"N": 2, "T": 30, "D": 3, "H": 4},  # long: the gradient carried through 30 steps
            {"N": 1, "T": 1, "D": 2, "H": 3}, {"N": 3, "T": 5, "D": 1, "H": 1}),
    "lstm_step": ({"N": 1, "D": 1, "H": 1}, {"N": 3, "D": 4, "H": 2}, {"N": 2, "D": 2, "H": 3}),
    "lstm": ({"N": 2, "T": 20, "D": 3, "H": 3}, {"N": 1, "T": 1, "D": 2, "H": 2}, {"N": 3, "T": 4, "D": 1, "H": 1}),
    "gru_step": ({"N": 1, "D": 1, "H": 1}, {"N": 3, "D": 4, "H": 2}, {"N": 2, "D": 2, "H": 3}),
    "gru": ({"N": 2, "T": 20, "D": 3, "H": 3}, {"N": 1, "T": 1, "D": 2, "H": 2}, {"N": 3, "T": 4, "D": 1, "H": 1}),
    "word_embedding": ({"N": 3, "T": 5, "V": 2, "D": 3},  # 15 positions, 2 words
                       {"N": 2, "T": 4, "V": 1, "D": 2},  # one word everywhere
                       {"N": 1, "T": 1, "V": 5, "D": 1}),
    "temporal_affine": ({"N": 1, "T": 1, "D": 1, "M": 1}, {"N": 2, "T": 3, "D": 4, "M": 2},
                        {"N": 3, "T": 2, "D": 3, "M": 3}),
    "positional_embedding": ({"N": 1, "T": 1, "D": 1, "P": 1}, {"N": 3, "T": 4, "D": 2, "P": 6},
                             {"N": 2, "T": 3, "D": 3, "P": 3}),
    "last_step": ({"N": 1, "T": 1, "H": 1}, {"N": 2, "T": 6, "H": 3}, {"N": 3, "T": 2, "H": 1}),
    "temporal_softmax_loss": ({"N": 1, "T": 1, "V": 1}, {"N": 3, "T": 4, "V": 5}, {"N": 2, "T": 5, "V": 2}),
    "attention": ({"N": 2, "heads": 2, "Tq": 4, "Tk": 4, "d": 3, "dv": 2, "mask": "none", "causal": True},
                  {"N": 1, "heads": 1, "Tq": 3, "Tk": 5, "d": 2, "dv": 3, "mask": "padding", "causal": False},
                  {"N": 2, "heads": 1, "Tq": 5, "Tk": 3, "d": 4, "dv": 1, "mask": "general", "causal": True},
                  {"N": 1, "heads": 2, "Tq": 1, "Tk": 1, "d": 1, "dv": 1, "mask": "none", "causal": False}),
    "multihead_attention": (
        {"N": 2, "Tq": 4, "Tk": 4, "Eq": 3, "Ek": 3, "Ev": 3, "heads": 2, "dh": 2, "dv": 2, "M": 3,
         "mask": "none", "causal": True},
        {"N": 1, "Tq": 2, "Tk": 4, "Eq": 2, "Ek": 3, "Ev": 1, "heads": 3, "dh": 1, "dv": 2, "M": 2,
         "mask": "general", "causal": False},
        {"N": 2, "Tq": 3, "Tk": 3, "Eq": 4, "Ek": 4, "Ev": 4, "heads": 1, "dh": 2, "dv": 1, "M": 1,
         "mask": "padding", "causal": True}),
    "transformer_block": (
        {"N": 2, "T": 4, "D": 4, "heads": 2, "dh": 2, "F": 4, "mask": "none", "causal": True, "activation": "gelu"},
        {"N": 1, "T": 3, "D": 3, "heads": 1, "dh": 2, "F": 3, "mask": "general", "causal": False,
         "activation": "relu"},
        {"N": 2, "T": 2, "D": 3, "heads": 2, "dh": 1, "F": 2, "mask": "padding", "causal": True,
         "activation": "relu"}),
}


def _recurrent_spec(name, params, values, draw, n_out=1):
    return OpSpec(name, "layer", params, draw, values, getattr(ops, f"{name}_forward"),
                          getattr(npl, f"{name}_forward"), getattr(ops, f"{name}_backward"),
                          getattr(npl, f"{name}_backward"), edges=EDGES[name], stress_in_float32=False, n_out=n_out)


_MHA_PARAMS = ("query", "key", "value", "Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo", "mask")

SPECS = (
    _recurrent_spec("rnn_step", ("x", "prev_h", "Wx", "Wh", "b"), _recurrent_values(1, True), _g_step),
    _recurrent_spec("rnn", ("x", "h0", "Wx", "Wh", "b"), _recurrent_values(1, False), _g_seq),
    _recurrent_spec("lstm_step", ("x", "prev_h", "prev_c", "Wx", "Wh", "b"), _recurrent_values(4, True, cell=True),
                    _g_step, n_out=2),
    _recurrent_spec("lstm", ("x", "h0", "Wx", "Wh", "b"), _recurrent_values(4, False), _g_seq),
    _recurrent_spec("gru_step", ("x", "prev_h", "Wx", "Wh", "b", "bh"), _recurrent_values(3, True, 2), _g_step),
    _recurrent_spec("gru", ("x", "h0", "Wx", "Wh", "b", "bh"), _recurrent_values(3, False, 2), _g_seq),
    OpSpec("word_embedding", "layer", ("x", "W"), _g_embedding, _v_embedding, ops.word_embedding_forward,
                   npl.word_embedding_forward, ops.word_embedding_backward, npl.word_embedding_backward,
                   edges=EDGES["word_embedding"], no_grad=("x",)),
    OpSpec("temporal_affine", "layer", ("x", "w", "b"), _g_temporal_affine, _v_temporal_affine,
                   ops.temporal_affine_forward, npl.temporal_affine_forward, ops.temporal_affine_backward,
                   npl.temporal_affine_backward, edges=EDGES["temporal_affine"]),
    OpSpec("positional_embedding", "layer", ("x", "W"), _g_positions, _v_positions, ops.positional_embedding_forward,
           npl.positional_embedding_forward, ops.positional_embedding_backward, npl.positional_embedding_backward,
           edges=EDGES["positional_embedding"]),
    OpSpec("last_step", "layer", ("h",), _g_last_step, _v_last_step, ops.last_step_forward, npl.last_step_forward,
           ops.last_step_backward, npl.last_step_backward, edges=EDGES["last_step"]),
    OpSpec("temporal_softmax_loss", "loss", ("x",), _g_temporal_loss, _v_temporal_loss,
                   ops.temporal_softmax_loss, npl.temporal_softmax_loss, edges=EDGES["temporal_softmax_loss"],
                   stress_in_float32=False),
    OpSpec("gelu", "layer", ("x",), _g_gelu, _v_gelu, ops.gelu_forward, npl.gelu_forward,
                   ops.gelu_backward, npl.gelu_backward, edges=EDGES["gelu"]),
    OpSpec("attention", "layer", ("q", "k", "v", "mask"), _g_attention, _v_attention, ops.attention_forward,
                   npl.attention_forward, ops.attention_backward, npl.attention_backward, _static_attention,
                   edges=EDGES["attention"], no_grad=("mask",), scale_floor=GRAD_SCALE_FLOOR),
    OpSpec("multihead_attention", "layer", _MHA_PARAMS, _g_mha, _v_mha,
                   _mask_before_static(ops.multihead_attention_forward, _MHA_ARRAYS),
                   _mask_before_static(npl.multihead_attention_forward, _MHA_ARRAYS),
                   ops.multihead_attention_backward, npl.multihead_attention_backward, _static_mha,
                   edges=EDGES["multihead_attention"], call=_moved(_MHA_ARRAYS), no_grad=("mask",),
                   scale_floor=GRAD_SCALE_FLOOR),
    OpSpec("transformer_block", "layer", ("x", *ops.TRANSFORMER_BLOCK_PARAMS, "mask"), _g_block, _v_block,
                   _mask_before_static(ops.transformer_block_forward, _BLOCK_ARRAYS), _np_block,
                   ops.transformer_block_backward, npl.transformer_block_backward, _static_block,
                   edges=EDGES["transformer_block"], call=_moved(_BLOCK_ARRAYS), no_grad=("mask",),
                   scale_floor=GRAD_SCALE_FLOOR),
)

SEQUENCE_OPS = {spec.name: spec for spec in SPECS}
