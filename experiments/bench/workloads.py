"""The documents' training workloads, each a `Workload` timed by one skeleton (`run_workload`).

A  digits 784-10-10 (001/003), full-batch gradient descent over m = 41000 rows: ms/iteration.
B  TwoLayerNet 784-200-10 (002), SGD, batch 200 drawn with replacement from 50000 rows: steps/s.
C  ConvNet (8 filters 3x3, pad 1, ReLU, 2x2 max pool, affine to 10), N = 64: forward +
   backward ms per batch (and training steps drawn from the 5000-image sample).
D  000's occupancy 5-5-1, full batch over 8143 rows: per-mode ms/iteration, for the
   manual/autodiff ratio only.
E  cs231n's new layers (batch, layer and spatial batch norm, dropout), forward + backward at
   cs231n-sized inputs, against PyTorch's own layers (`experiments/bench/layers.py`).
S  the sequence layers: an LSTM, a GRU and causal multi-head attention, forward + backward, against
   autodiff and PyTorch (`experiments/bench/sequence.py`).
T  one whole training step of each sequence model at its reproduce size, each gradient mode
   against the PyTorch peer's step on the same batch (`experiments/bench/steps.py`).

Every workload is timed as: document-style NumPy float64 (`reference_numpy`, the documents'
own algorithms; C's naive loops on a few images, scaled to 64) and vectorised NumPy where it
has them; jaxnets in each gradient mode, one jit call per step (or per gradient); the training
loop in each mode — `jaxnets.training.chunk_fn`, the very steps `train()` runs (many steps per
`lax.scan`, on-device sampling, donated state, divergence guard); the "fast" mode
(`Model.fast_gradient`) on float32 inputs and on uint8 pixels decoded inside the step
(`PixelTransform.decoder`); and PyTorch CPU autograd when torch is importable. Inputs are the
built-in 5000-image MNIST sample tiled to each workload's size (timings do not depend on which
images).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from experiments.bench.harness import Group, Rows, median_time
from jaxnets.data import PixelTransform, fit_pixel_transform, load_sample
from jaxnets.grads import MODES, value_and_grad
from jaxnets.models import conv_net, digits_mlp, occupancy_net, two_layer_net
from jaxnets.training import TrainConfig, chunk_fn, initial_state, make_optimizer, sample_batch_indices
from reference_numpy import layers as L
from reference_numpy import models as npm
from reference_numpy import naive

M_DIGITS = 41000
N_TWO_LAYER = 50000
BATCH = 200
N_CONV = 64
N_OCCUPANCY = 8143
UNITS = {"A": "ms/iter", "B": "steps/s", "C": "ms/batch", "D": "ms/iter", "E": "ms/call", "S": "ms/call",
         "T": "steps/s"}
TITLES = {"A": "A: digits 784-10-10, full-batch GD, m = 41000",
          "B": "B: TwoLayerNet 784-200-10, SGD batch 200 (with replacement)",
          "C": "C: ConvNet 8x3x3 pad 1 - ReLU - pool 2 - affine 10, N = 64, forward + backward",
          "D": "D: occupancy 5-5-1, full batch 8143 rows (manual/autodiff ratio only)",
          "E": "E: normalisation and dropout layers (and a transformer's layer norm), forward + backward, "
               "vs autodiff and PyTorch",
          "S": "S: sequence layers (LSTM and GRU 64 x 28 steps x 28 -> 128; causal MHA 32 x 64 tokens, width 128, 4 heads), "
               "forward + backward, vs autodiff and PyTorch",
          "T": "T: one training step (forward, backward, clip, Adam) of row_lstm, char_lm (LSTM, GRU) and "
               "transformer_lm at their reproduce sizes, batch 64, vs the PyTorch peer's step on the same batch"}


@dataclass
class Workload:
    """One workload: a model, its data, how it trains, and its baselines.

    x / y: the training rows (model inputs, float32) and labels; x8: the same rows as stored
    uint8 pixels in the model's layout (decoded by `transform`), or None.
    batch_size: None for full-batch gradient descent, else rows drawn per step.
    gradient_only: the workload's number is one gradient (forward + backward) of the first
        batch_size rows; its training-loop rows are reported beside it.
    numpy_rows / torch_rows: `(rows, cfg[, torch])` adding the baselines, or None.
    flops, bytes_min: per unit of work, for "% of limit" (None: not reported).
    """

    key: str
    model: object
    params: dict
    x: np.ndarray
    y: np.ndarray
    lr: float
    batch_size: Optional[int]
    loop_steps: int
    jit_steps: int
    x8: Optional[np.ndarray] = None
    transform: Optional[PixelTransform] = None
    gradient_only: bool = False
    numpy_rows: Optional[Callable] = None
    torch_rows: Optional[Callable] = None
    flops: Optional[float] = None
    bytes_min: Optional[float] = None
    rounds_factor: int = 1


# ---------------------------------------------------------------------------------------------
# The skeleton


def _fresh(params):
    return {k: jnp.array(v, copy=True) for k, v in params.items()}


def _jit_rows(w, group, xd, yd, cfg):
    """Each mode, one jit call per step (grad + SGD update, minibatch drawn on the device) or,
    for a gradient-only workload, per gradient of the first batch."""
    params, n = w.params, w.x.shape[0]
    key = jax.random.key(0)
    for mode in MODES:
        vg = value_and_grad(w.model, mode)
        if w.gradient_only:
            f = jax.jit(vg)
            xb, yb = xd[: w.batch_size or n], yd[: w.batch_size or n]
            group.add(f"jaxnets {mode} (jit)", "jax-mode", lambda _, f=f, xb=xb, yb=yb: f(params, xb, yb),
                      inner=cfg["inner"], mode=mode)
            continue

        @jax.jit
        def step(p, t, vg=vg):
            if w.batch_size is None:
                xb, yb = xd, yd
            else:
                idx = sample_batch_indices(key, t, n, w.batch_size)
                xb, yb = jnp.take(xd, idx, axis=0), jnp.take(yd, idx, axis=0)
            g = vg(p, xb, yb)[1]
            return jax.tree.map(lambda a, b: a - w.lr * b, p, g)

        def steps(_, step=step):
            p = params
            for t in range(w.jit_steps):
                p = step(p, t)
            return p

        group.add(f"jaxnets {mode} (jit per step, Python loop)", "jax-mode", steps, per=w.jit_steps, mode=mode)


def _loop_row(w, group, name, kind, mode, x, y, decode=None):
    """`train()`'s own steps: one `chunk_fn` call runs loop_steps SGD steps."""
    n, k = w.x.shape[0], w.loop_steps
    config = TrainConfig(mode=mode, learning_rate=w.lr, iterations=k, batch_size=w.batch_size)
    run = chunk_fn(w.model, config, n, k, decode)
    optimizer = make_optimizer(config, n)
    key = jax.random.key(0)

    def setup():
        return initial_state(w.params, optimizer.init(w.params))

    group.add(name, kind, lambda state: run(state, x, y, key, np.int32(k)), setup=setup, per=k,
              mode=mode if mode != "fast" else None)


def run_workload(w: Workload, cfg, torch=None):
    """Time every implementation of workload `w`; returns (rows, meta for the summary)."""
    rows = Rows(w.key, UNITS[w.key])
    if w.numpy_rows is not None:
        w.numpy_rows(rows, cfg)
    xd, yd = jnp.asarray(w.x), jnp.asarray(w.y)
    x8d = None if w.x8 is None else jnp.asarray(w.x8)
    decode = None if w.transform is None else w.transform.decoder(jnp.float32)
    has_fast = w.model.fast_gradient is not None
    group = Group()
    _jit_rows(w, group, xd, yd, cfg)
    if w.gradient_only and has_fast:
        fast = jax.jit(value_and_grad(w.model, "fast"))
        fast8 = jax.jit(value_and_grad(w.model, "fast", decode))
        b = w.batch_size
        group.add("fast: fused gradient, f32", "fast", lambda _: fast(w.params, xd[:b], yd[:b]), inner=cfg["inner"])
        if x8d is not None:
            group.add("fast: fused gradient, uint8 x", "fast", lambda _: fast8(w.params, x8d[:b], yd[:b]),
                      inner=cfg["inner"])
    loop = "training loop" + (": grad + update" if w.gradient_only else "")
    kind, fast_kind = ("fused-train", "fast-train") if w.gradient_only else ("fused", "fast")
    for mode in MODES:
        _loop_row(w, group, f"jaxnets {loop}, {mode} ({w.loop_steps} steps/call)", kind, mode, xd, yd)
    if has_fast:
        _loop_row(w, group, f"fast: {loop}, f32 x", fast_kind, "fast", xd, yd)
        if x8d is not None:
            _loop_row(w, group, f"fast: {loop}, uint8 x on device", fast_kind, "fast", x8d, yd, decode)
    group.run(rows, w.rounds_factor * cfg["rounds"])
    if torch is not None and w.torch_rows is not None:
        w.torch_rows(rows, cfg, torch)
    meta = None if w.flops is None else {"flops": w.flops, "bytes_min": w.bytes_min, "torch": torch is not None}
    return rows.rows, meta


# ---------------------------------------------------------------------------------------------
# Data and FLOPs


def _pixels():
    ds = load_sample()
    return ds.x_train, ds.y_train


def _tile(a, n):
    reps = -(-n // a.shape[0])
    return np.concatenate([a] * reps)[:n]


def _params(model):
    return {k: jnp.asarray(v, jnp.float32) for k, v in model.init(jax.random.key(0)).items()}


def flops_mlp(rows, d, h, c):
    """Forward (x W1, a1 W2) + dW1, dW2, da1: the multiply-adds of one gradient, x2."""
    return 2.0 * rows * (2 * d * h + 3 * h * c)


def flops_conv(n, c, f, k, h, w, flat, classes):
    conv = 2.0 * n * f * c * k * k * h * w
    return 2 * conv + 3 * 2.0 * n * flat * classes  # conv forward, dw; affine fwd, dW2, dp


def numpy_vectorised_mlp_step(x, y, params, lr, reg):
    """Hand-vectorised float32 NumPy step for the two-layer MLP (row layout, in-place ops)."""
    w1, b1, w2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    n = x.shape[0]
    z1 = x @ w1
    z1 += b1
    np.maximum(z1, 0, out=z1)
    s = z1 @ w2
    s += b2
    s -= s.max(axis=1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(axis=1, keepdims=True)
    s[np.arange(n), y] -= 1
    s /= n
    dw2 = z1.T @ s
    db2 = s.sum(axis=0)
    da1 = s @ w2.T
    da1 *= z1 > 0
    dw1 = x.T @ da1
    db1 = da1.sum(axis=0)
    if reg:
        dw1 += reg * w1
        dw2 += reg * w2
    w1 -= lr * dw1
    b1 -= lr * db1
    w2 -= lr * dw2
    b2 -= lr * db2
    return w1


def naive_conv_net_grads(params, x, y, pad, pool):
    """Document 000's loops for conv and pool, reference_numpy's affine/softmax; float64."""
    z1, c1 = naive.conv_forward_naive(x, params["W1"], params["b1"], 1, pad)
    a1, c2 = L.relu_forward(z1)
    p1, c3 = naive.max_pool_forward_naive(a1, pool, pool, pool)
    z2, c4 = L.affine_forward(p1, params["W2"], params["b2"])
    loss, dz2 = L.softmax_loss(z2, y)
    dp1, dw2, db2 = L.affine_backward(dz2, c4)
    da1 = naive.max_pool_backward_naive(dp1, c3)
    dz1 = L.relu_backward(da1, c2)
    _, dw1, db1 = naive.conv_backward_naive(dz1, c1)
    return loss, {"W1": dw1, "b1": db1, "W2": dw2, "b2": db2}


# ---------------------------------------------------------------------------------------------
# The four workloads


def workload_a(cfg):
    """Digits 784-10-10, full-batch gradient descent over m = 41000 rows."""
    lr = 0.1
    images, labels = _pixels()
    transform = fit_pixel_transform("scaled", images)
    x8 = transform.layout(_tile(images, M_DIGITS))
    y = _tile(labels, M_DIGITS).astype(np.int32)
    x32 = transform(_tile(images, M_DIGITS))
    model = digits_mlp()
    params = _params(model)
    np_model = npm.digits_mlp()

    def numpy_rows(rows, cfg):
        p64 = {k: np.asarray(v, np.float64) for k, v in params.items()}
        x64 = x32.astype(np.float64)

        def doc_step(_):
            _, g = np_model.loss_and_grads(p64, x64, y)
            for k in p64:
                p64[k] -= lr * g[k]

        rows.add("document-style NumPy f64 (reference_numpy)", "numpy-doc", *median_time(doc_step, cfg["numpy_repeats"]))
        pv = {k: np.array(v, np.float32) for k, v in params.items()}
        rows.add("vectorised NumPy f32", "numpy-vec",
                 *median_time(lambda _: numpy_vectorised_mlp_step(x32, y, pv, np.float32(lr), 0.0), cfg["numpy_repeats"]))

    def torch_rows(rows, cfg, torch):
        tx, ty = torch.from_numpy(x32), torch.from_numpy(y.astype(np.int64))
        tp = [torch.tensor(np.asarray(params[k]), requires_grad=True) for k in ("W1", "b1", "W2", "b2")]

        def torch_step(_):
            w1, b1, w2, b2 = tp
            loss = torch.nn.functional.cross_entropy(torch.relu(tx @ w1 + b1) @ w2 + b2, ty)
            grads = torch.autograd.grad(loss, tp)
            with torch.no_grad():
                for p_, g_ in zip(tp, grads):
                    p_ -= lr * g_

        rows.add("PyTorch CPU autograd f32", "torch", *median_time(torch_step, cfg["numpy_repeats"]))

    return Workload("A", model, params, x32, y, lr, None, cfg["loop_steps_a"], cfg["jit_steps_a"], x8, transform,
                    numpy_rows=numpy_rows, torch_rows=torch_rows,
                    flops=flops_mlp(M_DIGITS, 784, 10, 10), bytes_min=M_DIGITS * 784)


def workload_b(cfg):
    """TwoLayerNet 784-200-10, SGD with batch 200 drawn with replacement from 50000 rows."""
    lr, reg = 1e-3, 0.2
    images, labels = _pixels()
    tiled = _tile(images, N_TWO_LAYER)
    transform = fit_pixel_transform("mean_subtracted", tiled)
    x8, x32 = transform.layout(tiled), transform(tiled)
    y = _tile(labels, N_TWO_LAYER).astype(np.int32)
    model = two_layer_net(hidden_size=200, reg=reg)
    params = _params(model)
    nsteps = cfg["numpy_steps_b"]

    def numpy_rows(rows, cfg):
        rng = np.random.default_rng(0)
        np_model = npm.two_layer_net(hidden_size=200, reg=reg)
        p64 = {k: np.asarray(v, np.float64) for k, v in params.items()}
        x64 = x32.astype(np.float64)

        def doc_steps(_):
            for _ in range(nsteps):
                idx = rng.choice(N_TWO_LAYER, BATCH, replace=True)
                _, g = np_model.loss_and_grads(p64, x64[idx], y[idx])
                for k in p64:
                    p64[k] -= lr * g[k]

        t, s = median_time(doc_steps, cfg["numpy_repeats"])
        rows.add("document-style NumPy f64 (reference_numpy)", "numpy-doc", t, s, per=nsteps)
        pv = {k: np.array(v, np.float32) for k, v in params.items()}

        def vec_steps(_):
            for _ in range(nsteps):
                idx = rng.integers(0, N_TWO_LAYER, BATCH)
                numpy_vectorised_mlp_step(x32[idx], y[idx], pv, np.float32(lr), np.float32(reg))

        t, s = median_time(vec_steps, cfg["numpy_repeats"])
        rows.add("vectorised NumPy f32", "numpy-vec", t, s, per=nsteps)

    def torch_rows(rows, cfg, torch):
        tx, ty = torch.from_numpy(x32), torch.from_numpy(y.astype(np.int64))
        tp = [torch.tensor(np.asarray(params[k]), requires_grad=True) for k in ("W1", "b1", "W2", "b2")]

        def torch_steps(_):
            w1, b1, w2, b2 = tp
            for _ in range(nsteps):
                idx = torch.randint(0, N_TWO_LAYER, (BATCH,))
                scores = torch.relu(tx[idx] @ w1 + b1) @ w2 + b2
                loss = torch.nn.functional.cross_entropy(scores, ty[idx])
                loss = loss + 0.5 * reg * ((w1 * w1).sum() + (w2 * w2).sum())
                grads = torch.autograd.grad(loss, tp)
                with torch.no_grad():
                    for p_, g_ in zip(tp, grads):
                        p_ -= lr * g_

        t, s = median_time(torch_steps, cfg["numpy_repeats"])
        rows.add("PyTorch CPU autograd f32", "torch", t, s, per=nsteps)

    return Workload("B", model, params, x32, y, lr, BATCH, cfg["loop_steps_b"], cfg["jit_steps_b"], x8, transform,
                    numpy_rows=numpy_rows, torch_rows=torch_rows,
                    flops=flops_mlp(BATCH, 784, 200, 10), bytes_min=BATCH * 784)


def workload_c(cfg):
    """ConvNet 1x28x28 -> 8 filters 3x3 pad 1 -> ReLU -> 2x2 max pool -> affine 10; N = 64.
    The gradient rows take the first 64 images; the training rows draw 64 of the 5000."""
    images, labels = _pixels()
    transform = PixelTransform("conv", np.float32(1 / 255), np.zeros((), np.float32), images.shape[1:])
    x8, x32 = transform.layout(images), transform(images)
    y = labels.astype(np.int32)
    model = conv_net()
    params = _params(model)

    def numpy_rows(rows, cfg):
        p64 = {k: np.asarray(v, np.float64) for k, v in params.items()}
        x64, yb = x32[:N_CONV].astype(np.float64), y[:N_CONV]
        small = cfg["naive_images_c"]
        t, s = median_time(lambda _: naive_conv_net_grads(p64, x64[:small], yb[:small], 1, 2), cfg["naive_repeats"])
        scale = N_CONV / small
        rows.add(f"document-style NumPy f64, 000's loops (N={small}, x{scale:g})", "numpy-doc", t * scale,
                 [v * scale for v in s], note=f"timed on {small} images and scaled to {N_CONV}")
        np_model = npm.conv_net()
        rows.add("vectorised NumPy f64 (reference_numpy, per-tap)", "numpy-vec",
                 *median_time(lambda _: np_model.loss_and_grads(p64, x64, yb), cfg["numpy_repeats"] * 2))

    def torch_rows(rows, cfg, torch):
        conv = torch.nn.Conv2d(1, 8, 3, padding=1)
        fc = torch.nn.Linear(8 * 14 * 14, 10)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(np.asarray(params["W1"])))
            conv.bias.zero_()
            fc.weight.copy_(torch.from_numpy(np.asarray(params["W2"]).T.copy()))
            fc.bias.zero_()
        tparams = list(conv.parameters()) + list(fc.parameters())
        tx, ty = torch.from_numpy(x32[:N_CONV]), torch.from_numpy(y[:N_CONV].astype(np.int64))

        def torch_grads(_):
            a = torch.nn.functional.max_pool2d(torch.relu(conv(tx)), 2)
            loss = torch.nn.functional.cross_entropy(fc(a.flatten(1)), ty)
            return torch.autograd.grad(loss, tparams)

        rows.add("PyTorch CPU autograd f32", "torch",
                 *median_time(torch_grads, 2 * cfg["rounds"], warmup=5, inner=cfg["inner"]))

    return Workload("C", model, params, x32, y, 0.01, N_CONV, cfg["loop_steps_c"], 0, x8, transform,
                    gradient_only=True, numpy_rows=numpy_rows, torch_rows=torch_rows,
                    flops=flops_conv(N_CONV, 1, 8, 3, 28, 28, 8 * 14 * 14, 10), bytes_min=N_CONV * 784,
                    rounds_factor=2)


def workload_d(cfg):
    """000's 5-5-1 occupancy net, full batch over 8143 rows: per-mode ms/iteration only."""
    rng = np.random.default_rng(0)
    x = rng.random((N_OCCUPANCY, 5)).astype(np.float32)
    y = rng.integers(0, 2, N_OCCUPANCY).astype(np.float32)
    model = occupancy_net()
    return Workload("D", model, _params(model), x, y, 1.2, None, cfg["loop_steps_c"], 0,
                    gradient_only=True, rounds_factor=2)


WORKLOADS = {"A": workload_a, "B": workload_b, "C": workload_c, "D": workload_d}
#: every workload letter `jaxnets bench --workloads` takes (E and S are rows of layers, T of
#: whole training steps, G the gradient checker's times: not Workloads)
ALL = "ABCDESTG"
