"""Workload S: the sequence layers of issues 20 and 29, forward + backward, the hand-written pair
against jax autodiff of the same forward and PyTorch CPU, float32 ms per call.

- LSTM: batch 64, 28 steps, 28 inputs, 128 hidden (row-by-row MNIST's shape): `lstm_forward`
  then `lstm_backward` for (h; dx, dh0, dWx, dWh, db); PyTorch's `nn.LSTM` (batch_first,
  h0 given, c0 = 0) with autograd for x, h0 and its weights.
- GRU: the same shape (3H gates r, z, n, PyTorch's own convention, so its weights carry over
  with both biases): `gru_forward` then `gru_backward` for (h; dx, dh0, dWx, dWh, db, dbh);
  PyTorch's `nn.GRU` likewise.
- Causal multi-head self-attention: batch 32, 64 tokens, width 128, 4 heads, projections
  included: `multihead_attention_forward(x, x, x, ...)` then its backward (dx = dquery + dkey +
  dvalue, as x feeds all three); PyTorch's `nn.MultiheadAttention` (batch_first, the causal
  boolean mask, need_weights=False so it takes its fused scaled-dot-product path).

The rows use workload E's kinds (`layer`, `layer-autodiff`, `torch`), so `report` gives each
case the same two verdicts: hand-written / autodiff <= 1 and hand-written / PyTorch <= 1.
Each case's candidates are timed round-robin in one group. `--quick` keeps the sizes (the
targets are about them) and takes fewer rounds and calls.
"""
import jax
import jax.numpy as jnp
import numpy as np

from experiments.bench.harness import Rows
from experiments.bench.layers import pair_and_autodiff
from jaxnets import ops

LSTM_SHAPE = {"N": 64, "T": 28, "D": 28, "H": 128}
MHA_SHAPE = {"N": 32, "T": 64, "E": 128, "heads": 4}
LSTM_NAME = "LSTM 64 x 28 steps, 28 -> 128"
GRU_NAME = "GRU 64 x 28 steps, 28 -> 128"
MHA_NAME = "causal MHA 32 x 64 tokens, width 128, 4 heads"


def _f32(rng, shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def lstm_case(rng):
    """(arrays, pair, autodiff): `pair(*arrays)` and `auto(*arrays)` both return
    (h, dx, dh0, dWx, dWh, db) for the upstream gradient dh (the last array)."""
    n, t, d, h = LSTM_SHAPE["N"], LSTM_SHAPE["T"], LSTM_SHAPE["D"], LSTM_SHAPE["H"]
    arrays = (_f32(rng, (n, t, d)), _f32(rng, (n, h), 0.1), _f32(rng, (d, 4 * h), d ** -0.5),
              _f32(rng, (h, 4 * h), h ** -0.5), _f32(rng, (4 * h,), 0.1), _f32(rng, (n, t, h)))

    def pair(x, h0, Wx, Wh, b, dh):
        out, cache = ops.lstm_forward(x, h0, Wx, Wh, b)
        return (out, *ops.lstm_backward(dh, cache))

    def auto(x, h0, Wx, Wh, b, dh):
        out, vjp = jax.vjp(lambda *a: ops.lstm_forward(*a)[0], x, h0, Wx, Wh, b)
        return (out, *vjp(dh))

    return arrays, jax.jit(pair), jax.jit(auto)


def gru_case(rng):
    """(arrays, pair, autodiff) as lstm_case for the GRU: arrays x, h0, Wx, Wh, b, bh, dh; both
    return (h, dx, dh0, dWx, dWh, db, dbh)."""
    n, t, d, h = LSTM_SHAPE["N"], LSTM_SHAPE["T"], LSTM_SHAPE["D"], LSTM_SHAPE["H"]
    arrays = (_f32(rng, (n, t, d)), _f32(rng, (n, h), 0.1), _f32(rng, (d, 3 * h), d ** -0.5),
              _f32(rng, (h, 3 * h), h ** -0.5), _f32(rng, (3 * h,), 0.1), _f32(rng, (3 * h,), 0.1),
              _f32(rng, (n, t, h)))

    def pair(x, h0, Wx, Wh, b, bh, dh):
        out, cache = ops.gru_forward(x, h0, Wx, Wh, b, bh)
        return (out, *ops.gru_backward(dh, cache))

    def auto(x, h0, Wx, Wh, b, bh, dh):
        out, vjp = jax.vjp(lambda *a: ops.gru_forward(*a)[0], x, h0, Wx, Wh, b, bh)
        return (out, *vjp(dh))

    return arrays, jax.jit(pair), jax.jit(auto)


def _causal_mha(x, params, heads):
    return ops.multihead_attention_forward(x, x, x, *params, heads, causal=True)


def mha_case(rng):
    """(arrays, pair, autodiff) for causal self-attention: arrays are x, the 8 projection
    parameters (Wq, bq, Wk, bk, Wv, bv, Wo, bo) and dout; both return (out, dx, *dparams)."""
    n, t, e, heads = MHA_SHAPE["N"], MHA_SHAPE["T"], MHA_SHAPE["E"], MHA_SHAPE["heads"]
    params = tuple(_f32(rng, (e, e), e ** -0.5) if i % 2 == 0 else _f32(rng, (e,), 0.1) for i in range(8))
    arrays = (_f32(rng, (n, t, e)), *params, _f32(rng, (n, t, e)))

    def pair(x, *rest):
        *params, dout = rest
        out, cache = _causal_mha(x, params, heads)
        dq, dk, dv, *dparams = ops.multihead_attention_backward(dout, cache)
        return (out, dq + dk + dv, *dparams)

    def auto(x, *rest):
        *params, dout = rest
        out, vjp = jax.vjp(lambda x, *p: _causal_mha(x, p, heads)[0], x, *params)
        return (out, *vjp(dout))

    return arrays, jax.jit(pair), jax.jit(auto)


def _torch_lstm(torch, arrays):
    x, h0, Wx, Wh, b, dh = arrays
    n, h = h0.shape
    lstm = torch.nn.LSTM(x.shape[2], h, batch_first=True)
    # the same weights: PyTorch's gates are (i, f, g, o) along 4H, cs231n's (i, f, o, g); its
    # weights act on columns (W here is its weight transposed); its second bias stays 0
    order = np.concatenate([np.arange(k * h, (k + 1) * h) for k in (0, 1, 3, 2)])
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(Wx[:, order].T.copy()))
        lstm.weight_hh_l0.copy_(torch.from_numpy(Wh[:, order].T.copy()))
        lstm.bias_ih_l0.copy_(torch.from_numpy(b[order]))
        lstm.bias_hh_l0.zero_()
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    th0 = torch.from_numpy(h0.copy())[None].requires_grad_(True)
    tc0, tdh = torch.zeros(1, n, h), torch.from_numpy(dh.copy())
    wrt = (tx, th0, *lstm.parameters())

    def call(_):
        out, _state = lstm(tx, (th0, tc0))
        return (out.detach(), *torch.autograd.grad(out, wrt, tdh))

    return call, lstm


def _torch_gru(torch, arrays):
    x, h0, Wx, Wh, b, bh, dh = arrays
    n, h = h0.shape
    gru = torch.nn.GRU(x.shape[2], h, batch_first=True)
    with torch.no_grad():  # the same gate order (r, z, n) and both biases; W here is its weight transposed
        gru.weight_ih_l0.copy_(torch.from_numpy(Wx.T.copy()))
        gru.weight_hh_l0.copy_(torch.from_numpy(Wh.T.copy()))
        gru.bias_ih_l0.copy_(torch.from_numpy(b.copy()))
        gru.bias_hh_l0.copy_(torch.from_numpy(bh.copy()))
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    th0 = torch.from_numpy(h0.copy())[None].requires_grad_(True)
    tdh = torch.from_numpy(dh.copy())
    wrt = (tx, th0, *gru.parameters())

    def call(_):
        out, _state = gru(tx, th0)
        return (out.detach(), *torch.autograd.grad(out, wrt, tdh))

    return call, gru


def _torch_mha(torch, arrays):
    x, *params, dout = arrays
    n, t, e = x.shape
    mha = torch.nn.MultiheadAttention(e, MHA_SHAPE["heads"], batch_first=True)
    Wq, bq, Wk, bk, Wv, bv, Wo, bo = (torch.from_numpy(p.copy()) for p in params)
    with torch.no_grad():  # PyTorch's weights act on columns: W here is its weight transposed
        mha.in_proj_weight.copy_(torch.cat([Wq.T, Wk.T, Wv.T]))
        mha.in_proj_bias.copy_(torch.cat([bq, bk, bv]))
        mha.out_proj.weight.copy_(Wo.T)
        mha.out_proj.bias.copy_(bo)
    hidden = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)  # True = may not attend
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    tdout = torch.from_numpy(dout.copy())
    wrt = (tx, *mha.parameters())

    def call(_):
        out, _weights = mha(tx, tx, tx, attn_mask=hidden, need_weights=False, is_causal=True)
        return (out.detach(), *torch.autograd.grad(out, wrt, tdout))

    return call, mha


CASES = ((LSTM_NAME, lstm_case, _torch_lstm), (GRU_NAME, gru_case, _torch_gru), (MHA_NAME, mha_case, _torch_mha))


def torch_agrees(torch, call, pair_out):
    """Whether PyTorch's output matches the hand-written forward's (the same layer with the same
    weights: a check that the rows time the same computation), to float32 rounding."""
    ours, theirs = np.asarray(pair_out[0]), call(None)[0].numpy()
    return bool(np.allclose(ours, theirs, rtol=1e-4, atol=1e-4))


def sequence_rows(cfg, torch=None):
    """Forward + backward of each case of CASES: the hand-written pair, autodiff and, when
    torch is given, PyTorch's layer with autograd, timed round-robin (float32 ms per call)."""
    rows = Rows("S", "ms/call")
    rng = np.random.default_rng(0)
    for name, make, make_torch in CASES:
        arrays, pair, auto = make(rng)
        args = tuple(jnp.asarray(a) for a in arrays)
        group = pair_and_autodiff(name, pair, auto, args, cfg)
        if torch is not None:
            call, _module = make_torch(torch, arrays)
            if not torch_agrees(torch, call, pair(*args)):
                raise RuntimeError(f"bench S: PyTorch's {name} does not compute our forward; the rows would "
                                   "time different layers")
            group.add(f"{name}: PyTorch CPU autograd", "torch", call, inner=cfg["inner"])
        group.run(rows, cfg["rounds"])
    return rows.rows
