"""Benchmark: the documents' three training workloads, timed side by side in one run.

    python -m experiments.benchmark            # a few minutes; --quick for a <1 min smoke run

A  digits 784-10-10 (001/003), full-batch gradient descent over m = 41000 rows: ms/iteration.
B  TwoLayerNet 784-200-10 (002), SGD, batch 200 drawn with replacement from 50000 rows: steps/s.
C  ConvNet (8 filters 3x3, pad 1, ReLU, 2x2 max pool, affine to 10), N = 64: forward +
   backward ms per batch.

Each workload is timed as document-style NumPy float64 (`reference_numpy`, the documents' own
algorithms; C's naive loops are timed on a few images and scaled to 64), vectorised NumPy,
jaxnets in each gradient mode (one jitted call per step), the fused training loop in each mode
(`jaxnets.fused.fused_steps`: many steps per `lax.scan`, on-device sampling, donated buffers)
and the fast paths of `jaxnets.fused` (one pass over X, uint8 pixels, fused conv-ReLU-pool),
plus PyTorch CPU autograd when torch is importable. A fourth model, 000's occupancy net, is
timed per mode only, for the manual/autodiff ratio.

Every number is the median of repeated timings after warm-up (compilation excluded), with
`block_until_ready` on the outputs. Matmuls run at float32 precision
(`jax_default_matmul_precision = "float32"`; on CPU that is plain float32). The machine's own
limits are measured by the same run: float32 matmul GFLOP/s (2048^3, JAX and NumPy, the larger
counts) and read bandwidth (sum over 256 MB), and each result is reported as a percentage of
the limit its FLOPs and bytes imply. Inputs are the built-in 5000-image MNIST sample tiled to
each workload's size (timings do not depend on which images).

Results: a table on stdout and `runs/benchmark/benchmark.json`. `run(...)` returns the same
dict, `main(argv)` is the command line (also `jaxnets bench`).

If OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set (they slow NumPy on some processors), `main`
re-runs itself once without them and says so; `run` records whatever the environment holds.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_REEXEC_FLAG = "JAXNETS_BENCH_OPENBLAS_CLEARED"
DEFAULT_OUT = Path("runs") / "benchmark"

M_DIGITS = 41000
N_TWO_LAYER = 50000
BATCH = 200
N_CONV = 64
N_OCCUPANCY = 8143

#: the issue's targets on the 2-core CPU (medians)
TARGETS = {
    "A": {"what": "ms/iter", "target": 6.0, "better": "lower", "doc_numpy": 45.0},
    "B": {"what": "steps/s", "target": 2300.0, "better": "higher", "doc_numpy": 450.0},
    "C": {"what": "ms/batch", "target": 1.0, "better": "lower", "doc_numpy": 3300.0},
    "manual/autodiff": {"what": "ratio", "target": 1.0, "better": "lower"},
}

# ---------------------------------------------------------------------------------------------
# Timing


def _block(out):
    import jax

    return jax.block_until_ready(out)


def _median_time(fn, repeats, warmup=1, setup=None, inner=1):
    """Median seconds per call of `fn(arg)` over `repeats` samples of `inner` calls each, after
    `warmup` untimed calls; `setup()` (untimed) makes a fresh argument per sample (donated
    buffers), then `inner` must be 1."""
    for _ in range(warmup):
        _block(fn(setup() if setup else None))
    samples = []
    for _ in range(repeats):
        arg = setup() if setup else None
        t0 = time.perf_counter()
        for _ in range(inner):
            out = fn(arg)
        _block(out)
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples), samples


def _interleaved(cands, repeats, warmup=1):
    """Time several candidates round-robin (one sample of each per round), so that a change
    in the machine's load hits all of them alike; returns {name: (median, samples)}.
    cands: {name: (fn, setup, inner)} as for _median_time."""
    for fn, setup, inner in cands.values():
        for _ in range(warmup):
            _block(fn(setup() if setup else None))
    samples = {name: [] for name in cands}
    for _ in range(repeats):
        for name, (fn, setup, inner) in cands.items():
            arg = setup() if setup else None
            t0 = time.perf_counter()
            for _ in range(inner):
                out = fn(arg)
            _block(out)
            samples[name].append((time.perf_counter() - t0) / inner)
    return {name: (statistics.median(v), v) for name, v in samples.items()}


# ---------------------------------------------------------------------------------------------
# Machine limits


def measure_limits(quick=False):
    import jax
    import jax.numpy as jnp
    import numpy as np

    n = 1024 if quick else 2048
    reps = 5 if quick else 10
    a = jnp.asarray(np.random.default_rng(0).random((n, n)), jnp.float32)
    mm = jax.jit(lambda a: a @ a)
    t_jax, _ = _median_time(lambda _: mm(a), reps, warmup=2)
    an = np.asarray(a)
    t_np, _ = _median_time(lambda _: an @ an, reps, warmup=2)
    flops = 2.0 * n**3
    size = (16 if quick else 64) * 1024 * 1024
    big = jnp.ones((size,), jnp.float32)
    total = jax.jit(jnp.sum)
    t_read, _ = _median_time(lambda _: total(big), reps * 2, warmup=2)
    bign = np.ones((size,), np.float32)
    t_read_np, _ = _median_time(lambda _: bign.sum(), reps, warmup=1)
    x32 = jnp.ones((M_DIGITS, 784), jnp.float32)
    t_x32, _ = _median_time(lambda _: total(x32), reps * 2, warmup=2)
    x8 = jnp.ones((M_DIGITS, 784), jnp.uint8)
    sum8 = jax.jit(lambda a: jnp.sum(a.astype(jnp.float32)))
    t_x8, _ = _median_time(lambda _: sum8(x8), reps * 2, warmup=2)
    out = {
        "matmul_n": n,
        "matmul_gflops_jax": flops / t_jax / 1e9,
        "matmul_gflops_numpy": flops / t_np / 1e9,
        "read_gbps_jax": 4 * size / t_read / 1e9,
        "read_gbps_numpy": 4 * size / t_read_np / 1e9,
        "read_x_float32_ms": t_x32 * 1e3,
        "read_x_uint8_ms": t_x8 * 1e3,
    }
    out["matmul_gflops"] = max(out["matmul_gflops_jax"], out["matmul_gflops_numpy"])
    out["read_gbps"] = max(out["read_gbps_jax"], out["read_gbps_numpy"])
    return out


def _flops_mlp(rows, d, h, c):
    """Forward (x W1, a1 W2) + dW1, dW2, da1: the multiply-adds of one gradient, x2."""
    return 2.0 * rows * (2 * d * h + 3 * h * c)


def _flops_conv(n, c, f, k, h, w, flat, classes):
    conv = 2.0 * n * f * c * k * k * h * w
    return 2 * conv + 3 * 2.0 * n * flat * classes  # conv forward, dw; affine fwd, dW2, dp


# ---------------------------------------------------------------------------------------------
# Data


def _pixels():
    from jaxnets.data import load_sample

    ds = load_sample()
    return ds.x_train.reshape(len(ds.x_train), -1), ds.y_train


def _tile(a, n):
    import numpy as np

    reps = -(-n // a.shape[0])
    return np.concatenate([a] * reps)[:n]


# ---------------------------------------------------------------------------------------------
# NumPy baselines


def _numpy_vectorised_mlp_step(x, y, params, lr, reg):
    """Hand-vectorised float32 NumPy step for the two-layer MLP (row layout, in-place ops)."""
    import numpy as np

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


def _naive_conv_net_grads(params, x, y, pad, pool):
    """Document 000's loops for conv and pool, reference_numpy's affine/softmax; float64."""
    from reference_numpy import layers as L

    z1, c1 = L.conv_forward_naive(x, params["W1"], params["b1"], 1, pad)
    a1, c2 = L.relu_forward(z1)
    p1, c3 = L.max_pool_forward_naive(a1, pool, pool, pool)
    z2, c4 = L.affine_forward(p1, params["W2"], params["b2"])
    loss, dz2 = L.softmax_loss(z2, y)
    dp1, dw2, db2 = L.affine_backward(dz2, c4)
    da1 = L.max_pool_backward_naive(dp1, c3)
    dz1 = L.relu_backward(da1, c2)
    _, dw1, db1 = L.conv_backward_naive(dz1, c1)
    return loss, {"W1": dw1, "b1": db1, "W2": dw2, "b2": db2}


# ---------------------------------------------------------------------------------------------
# PyTorch (optional)


def _torch():
    try:
        import torch
    except Exception as err:  # not installed, or broken
        return None, f"not installed ({type(err).__name__})"
    return torch, f"torch {torch.__version__}, {torch.get_num_threads()} threads"


# ---------------------------------------------------------------------------------------------
# The workloads


class _Rows:
    def __init__(self, workload, unit):
        self.workload, self.unit, self.rows = workload, unit, []

    def add(self, name, kind, seconds, samples=None, per=1, note="", mode=None):
        """seconds: median seconds per `per` units (per > 1 for a call that runs many steps)."""
        sec = seconds / per
        value = 1.0 / sec if self.unit == "steps/s" else sec * 1e3
        row = {"workload": self.workload, "impl": name, "kind": kind, "mode": mode,
               "seconds": sec, "value": value, "unit": self.unit, "note": note}
        if samples is not None:
            row["samples_s"] = [s / per for s in samples]
        self.rows.append(row)
        print(f"  {self.workload}  {name:52s} {value:10.3f} {self.unit}", flush=True)
        return row


class _Group:
    """Candidates timed together, round-robin (`_interleaved`), then added as rows in order."""

    def __init__(self):
        self.cands, self.meta = {}, {}

    def add(self, name, kind, fn, setup=None, inner=1, per=1, mode=None):
        self.cands[name] = (fn, setup, inner)
        self.meta[name] = (kind, per, mode)

    def run(self, rows, rounds):
        for name, (t, samples) in _interleaved(self.cands, rounds).items():
            kind, per, mode = self.meta[name]
            rows.add(name, kind, t, samples, per=per, mode=mode)


def _jax_setup(precision="float32"):
    import jax

    jax.config.update("jax_default_matmul_precision", precision)
    if jax.config.jax_enable_x64:
        raise RuntimeError("the benchmark runs in float32: jax_enable_x64 must be off")


def _fresh(params):
    import jax.numpy as jnp

    return {k: jnp.array(v, copy=True) for k, v in params.items()}


def bench_a(cfg, torch):
    """Digits 784-10-10, full-batch gradient descent over m = 41000 rows."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from jaxnets import fused
    from jaxnets.grads import MODES, value_and_grad
    from jaxnets.models import digits_mlp
    from reference_numpy import models as npm

    lr = 0.1
    pix, labels = _pixels()
    x8 = _tile(pix, M_DIGITS)
    y = _tile(labels, M_DIGITS).astype(np.int32)
    x32 = x8.astype(np.float32) / np.float32(255)
    model = digits_mlp()
    params = {k: jnp.asarray(v, jnp.float32) for k, v in model.init(jax.random.key(0)).items()}
    rows = _Rows("A", "ms/iter")

    # document-style NumPy float64: reference_numpy's model, one GD step per call
    np_model = npm.digits_mlp()
    p64 = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x64 = x32.astype(np.float64)

    def doc_step(_):
        _, g = np_model.loss_and_grads(p64, x64, y)
        for k in p64:
            p64[k] -= lr * g[k]

    rows.add("document-style NumPy f64 (reference_numpy)", "numpy-doc", *_median_time(doc_step, cfg["numpy_repeats"]))
    pv = {k: np.array(v, np.float32) for k, v in params.items()}
    rows.add("vectorised NumPy f32", "numpy-vec",
             *_median_time(lambda _: _numpy_vectorised_mlp_step(x32, y, pv, np.float32(lr), 0.0), cfg["numpy_repeats"]))

    xd, yd, x8d = jnp.asarray(x32), jnp.asarray(y), jnp.asarray(x8)
    group = _Group()
    for mode in MODES:
        vg = value_and_grad(model, mode)
        step = jax.jit(lambda p, x, y, vg=vg: jax.tree.map(lambda a, g: a - lr * g, p, vg(p, x, y)[1]))
        group.add(f"jaxnets {mode} (jit per step)", "jax-mode", lambda _, step=step: step(params, xd, yd), mode=mode)
    opt = optax.sgd(lr)
    k = cfg["fused_steps_a"]

    def setup():
        p = _fresh(params)
        return p, opt.init(p)

    def fused_row(name, kind, grad_fn, x, mode=None):
        run = fused.fused_steps(grad_fn, opt, k)
        group.add(name, kind, lambda a: run(a[0], a[1], x, yd, jax.random.key(0), 0), setup=setup, per=k, mode=mode)

    for mode in MODES:
        fused_row(f"jaxnets fused loop, {mode} ({k} steps/call)", "fused", value_and_grad(model, mode), xd, mode)
    fused_row("fast: one pass over X, f32 X", "fast", fused.mlp_one_pass_value_and_grad(model), xd)
    fused_row("fast: one pass over X, uint8 X on device", "fast",
              fused.mlp_one_pass_value_and_grad(model, scale=255.0), x8d)
    group.run(rows, cfg["rounds"])

    torch_row = None
    if torch is not None:
        tx, ty = torch.from_numpy(x32), torch.from_numpy(y.astype(np.int64))
        tp = [torch.tensor(np.asarray(params[k]), requires_grad=True) for k in ("W1", "b1", "W2", "b2")]

        def torch_step(_):
            w1, b1, w2, b2 = tp
            loss = torch.nn.functional.cross_entropy(torch.relu(tx @ w1 + b1) @ w2 + b2, ty)
            grads = torch.autograd.grad(loss, tp)
            with torch.no_grad():
                for p_, g_ in zip(tp, grads):
                    p_ -= lr * g_

        torch_row = rows.add("PyTorch CPU autograd f32", "torch", *_median_time(torch_step, cfg["numpy_repeats"]))
    flops = _flops_mlp(M_DIGITS, 784, 10, 10)
    bytes_u8 = M_DIGITS * 784
    return rows.rows, {"flops": flops, "bytes_min": bytes_u8, "torch": torch_row is not None}


def bench_b(cfg, torch):
    """TwoLayerNet 784-200-10, SGD with batch 200 drawn with replacement from 50000 rows."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from jaxnets import fused
    from jaxnets.data import mean_image
    from jaxnets.grads import MODES, value_and_grad
    from jaxnets.models import two_layer_net
    from reference_numpy import models as npm

    lr, reg = 1e-3, 0.2
    pix, labels = _pixels()
    x8 = _tile(pix, N_TWO_LAYER)
    y = _tile(labels, N_TWO_LAYER).astype(np.int32)
    mu = mean_image(x8, np.float32)
    x32 = x8.astype(np.float32) - mu
    model = two_layer_net(hidden_size=200, reg=reg)
    params = {k: jnp.asarray(v, jnp.float32) for k, v in model.init(jax.random.key(0)).items()}
    rows = _Rows("B", "steps/s")
    rng = np.random.default_rng(0)
    nsteps = cfg["numpy_steps_b"]

    np_model = npm.two_layer_net(hidden_size=200, reg=reg)
    p64 = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x64 = x32.astype(np.float64)

    def doc_steps(_):
        for _ in range(nsteps):
            idx = rng.choice(N_TWO_LAYER, BATCH, replace=True)
            _, g = np_model.loss_and_grads(p64, x64[idx], y[idx])
            for k in p64:
                p64[k] -= lr * g[k]

    t, s = _median_time(doc_steps, cfg["numpy_repeats"])
    rows.add("document-style NumPy f64 (reference_numpy)", "numpy-doc", t, s, per=nsteps)
    pv = {k: np.array(v, np.float32) for k, v in params.items()}

    def vec_steps(_):
        for _ in range(nsteps):
            idx = rng.integers(0, N_TWO_LAYER, BATCH)
            _numpy_vectorised_mlp_step(x32[idx], y[idx], pv, np.float32(lr), np.float32(reg))

    t, s = _median_time(vec_steps, cfg["numpy_repeats"])
    rows.add("vectorised NumPy f32", "numpy-vec", t, s, per=nsteps)

    xd, yd, x8d = jnp.asarray(x32), jnp.asarray(y), jnp.asarray(x8)
    key = jax.random.key(0)
    loop = cfg["jit_steps_b"]
    group = _Group()
    for mode in MODES:
        vg = value_and_grad(model, mode)

        @jax.jit
        def step(p, t, vg=vg):
            idx = jax.random.randint(jax.random.fold_in(key, t), (BATCH,), 0, N_TWO_LAYER)
            g = vg(p, jnp.take(xd, idx, axis=0), jnp.take(yd, idx, axis=0))[1]
            return jax.tree.map(lambda a, b: a - lr * b, p, g)

        def steps(_, step=step):
            p = params
            for t in range(loop):
                p = step(p, t)
            return p

        group.add(f"jaxnets {mode} (jit per step, Python loop)", "jax-mode", steps, per=loop, mode=mode)
    opt = optax.sgd(lr)
    k = cfg["fused_steps_b"]

    def setup():
        p = _fresh(params)
        return p, opt.init(p)

    def fused_row(name, kind, grad_fn, x, mode=None):
        run = fused.fused_steps(grad_fn, opt, k, batch_size=BATCH)
        group.add(name, kind, lambda a: run(a[0], a[1], x, yd, key, 0), setup=setup, per=k, mode=mode)

    for mode in MODES:
        fused_row(f"jaxnets fused loop, {mode} ({k} steps/call)", "fused", value_and_grad(model, mode), xd, mode)
    fused_row("fast: fused loop, uint8 X on device (manual)", "fast",
              fused.fast_value_and_grad(model, shift=jnp.asarray(mu)), x8d)

    # The loop `jaxnets.train.train` itself runs between progress reports (one chunk of
    # MAX_CHUNK steps: per-step divergence guard, last-good-parameters carry), timed alone so
    # that its accuracy reports do not count.
    from jaxnets import train as T

    chunk = T.MAX_CHUNK
    tcfg = T.TrainConfig(mode="manual", learning_rate=lr, iterations=chunk, batch_size=BATCH)
    train_chunk = T._chunk_fn(model, tcfg, N_TWO_LAYER, chunk)

    def train_setup():
        p = _fresh(params)
        o = opt.init(p)
        return T._State(p, o, _fresh(p), opt.init(p), jnp.asarray(0, jnp.int32), jnp.asarray(T.RUNNING, jnp.int32))

    group.add(f"jaxnets.train.train's loop, manual ({chunk} steps/call)", "train",
              lambda st: train_chunk(st, xd, yd, key, np.int32(chunk)), setup=train_setup, per=chunk, mode="manual")
    group.run(rows, cfg["rounds"])

    if torch is not None:
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

        t, s = _median_time(torch_steps, cfg["numpy_repeats"])
        rows.add("PyTorch CPU autograd f32", "torch", t, s, per=nsteps)
    return rows.rows, {"flops": _flops_mlp(BATCH, 784, 200, 10), "bytes_min": BATCH * 784}


def bench_c(cfg, torch):
    """ConvNet 1x28x28 -> 8 filters 3x3 pad 1 -> ReLU -> 2x2 max pool -> affine 10; N = 64."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from jaxnets import fused
    from jaxnets.grads import MODES, value_and_grad
    from jaxnets.models import conv_net
    from reference_numpy import models as npm

    pix, labels = _pixels()
    x8 = pix[:N_CONV].reshape(N_CONV, 1, 28, 28)
    y = labels[:N_CONV].astype(np.int32)
    x32 = x8.astype(np.float32) / np.float32(255)
    model = conv_net()
    params = {k: jnp.asarray(v, jnp.float32) for k, v in model.init(jax.random.key(0)).items()}
    rows = _Rows("C", "ms/batch")
    p64 = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x64 = x32.astype(np.float64)

    small = cfg["naive_images_c"]
    t, s = _median_time(lambda _: _naive_conv_net_grads(p64, x64[:small], y[:small], 1, 2), cfg["naive_repeats"])
    scale = N_CONV / small
    rows.add(f"document-style NumPy f64, 000's loops (N={small}, x{scale:g})", "numpy-doc", t * scale,
             [v * scale for v in s], note=f"timed on {small} images and scaled to {N_CONV}")
    np_model = npm.conv_net()
    rows.add("vectorised NumPy f64 (reference_numpy, per-tap)", "numpy-vec",
             *_median_time(lambda _: np_model.loss_and_grads(p64, x64, y), cfg["numpy_repeats"] * 2))

    xd, yd, x8d = jnp.asarray(x32), jnp.asarray(y), jnp.asarray(x8)
    inner = cfg["inner_c"]
    group = _Group()
    for mode in MODES:
        f = jax.jit(value_and_grad(model, mode))
        group.add(f"jaxnets {mode} (jit)", "jax-mode", lambda _, f=f: f(params, xd, yd), inner=inner, mode=mode)
    fast32 = jax.jit(fused.conv_net_value_and_grad(model))
    group.add("fast: fused conv-ReLU-pool layer, f32", "fast", lambda _: fast32(params, xd, yd), inner=inner)
    fast8 = jax.jit(fused.conv_net_value_and_grad(model, scale=255.0))
    group.add("fast: fused conv-ReLU-pool layer, uint8 x", "fast", lambda _: fast8(params, x8d, yd), inner=inner)

    # training steps (gradient + SGD update, batch 64 drawn on the device from the 5000-image sample)
    opt = optax.sgd(0.01)
    k = cfg["fused_steps_c"]
    pool8 = jnp.asarray(pix.reshape(-1, 1, 28, 28))
    pool32 = pool8.astype(jnp.float32) / 255.0
    ypool = jnp.asarray(labels.astype(np.int32))

    def setup():
        p = _fresh(params)
        return p, opt.init(p)

    def fused_row(name, kind, grad_fn, x, mode=None):
        run = fused.fused_steps(grad_fn, opt, k, batch_size=N_CONV)
        group.add(name, kind, lambda a: run(a[0], a[1], x, ypool, jax.random.key(0), 0), setup=setup, per=k,
                  mode=mode)

    for mode in MODES:
        fused_row(f"jaxnets fused loop, {mode}: grad + update ({k} steps/call)", "fused-train",
                  value_and_grad(model, mode), pool32, mode)
    fused_row("fast: fused loop, fused layer, uint8 x: grad + update", "fast-train",
              fused.conv_net_value_and_grad(model, scale=255.0), pool8)
    group.run(rows, 2 * cfg["rounds"])

    if torch is not None:
        conv = torch.nn.Conv2d(1, 8, 3, padding=1)
        fc = torch.nn.Linear(8 * 14 * 14, 10)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(np.asarray(params["W1"])))
            conv.bias.zero_()
            fc.weight.copy_(torch.from_numpy(np.asarray(params["W2"]).T.copy()))
            fc.bias.zero_()
        tparams = list(conv.parameters()) + list(fc.parameters())
        tx, ty = torch.from_numpy(x32), torch.from_numpy(y.astype(np.int64))

        def torch_grads(_):
            a = torch.nn.functional.max_pool2d(torch.relu(conv(tx)), 2)
            loss = torch.nn.functional.cross_entropy(fc(a.flatten(1)), ty)
            return torch.autograd.grad(loss, tparams)

        rows.add("PyTorch CPU autograd f32", "torch",
                 *_median_time(torch_grads, 2 * cfg["rounds"], warmup=5, inner=inner))
    flops = _flops_conv(N_CONV, 1, 8, 3, 28, 28, 8 * 14 * 14, 10)
    return rows.rows, {"flops": flops, "bytes_min": N_CONV * 784}


def bench_occupancy(cfg):
    """000's 5-5-1 occupancy net, full batch over 8143 rows: per-mode ms/iteration only."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import optax

    from jaxnets import fused
    from jaxnets.grads import MODES, value_and_grad
    from jaxnets.models import occupancy_net

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((N_OCCUPANCY, 5)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 2, N_OCCUPANCY), jnp.float32)
    model = occupancy_net()
    params = {k: jnp.asarray(v, jnp.float32) for k, v in model.init(jax.random.key(0)).items()}
    rows = _Rows("D", "ms/iter")
    group = _Group()
    for mode in MODES:
        f = jax.jit(value_and_grad(model, mode))
        group.add(f"occupancy 5-5-1 jaxnets {mode} (jit)", "jax-mode", lambda _, f=f: f(params, x, y),
                  inner=cfg["inner_c"], mode=mode)
    opt = optax.sgd(1.2)
    k = cfg["fused_steps_c"]

    def setup():
        p = _fresh(params)
        return p, opt.init(p)

    for mode in MODES:
        run = fused.fused_steps(value_and_grad(model, mode), opt, k)
        group.add(f"occupancy 5-5-1 jaxnets fused loop, {mode} ({k} steps/call)", "fused",
                  lambda a, run=run: run(a[0], a[1], x, y, jax.random.key(0), 0), setup=setup, per=k, mode=mode)
    group.run(rows, 2 * cfg["rounds"])
    return rows.rows


# ---------------------------------------------------------------------------------------------
# Summary


CONFIGS = {
    "default": {"rounds": 7, "numpy_repeats": 5, "naive_repeats": 3, "naive_images_c": 2,
                "numpy_steps_b": 100, "jit_steps_b": 100, "fused_steps_a": 20, "fused_steps_b": 500,
                "fused_steps_c": 100, "inner_c": 20},
    "quick": {"rounds": 3, "numpy_repeats": 2, "naive_repeats": 1, "naive_images_c": 1,
              "numpy_steps_b": 20, "jit_steps_b": 20, "fused_steps_a": 5, "fused_steps_b": 100,
              "fused_steps_c": 20, "inner_c": 5},
}


def _summarise(result):
    limits = result["limits"]
    peak = limits["matmul_gflops"] * 1e9
    bw = limits["read_gbps"] * 1e9
    summary = {}
    for w, meta in result["work"].items():
        rows = [r for r in result["rows"] if r["workload"] == w]
        doc = next((r for r in rows if r["kind"] == "numpy-doc"), None)
        limit_s = max(meta["flops"] / peak, meta["bytes_min"] / bw)
        for r in rows:
            r["vs_doc_numpy"] = doc["seconds"] / r["seconds"] if doc else None
            r["pct_of_limit"] = 100.0 * limit_s / r["seconds"]
        jax_rows = [r for r in rows if r["kind"] in ("jax-mode", "fused", "fast", "train")]
        best = min(jax_rows, key=lambda r: r["seconds"])
        torch_row = next((r for r in rows if r["kind"] == "torch"), None)
        summary[w] = {"limit_seconds": limit_s, "flops": meta["flops"], "best_jaxnets": best["impl"],
                      "best_value": best["value"], "unit": best["unit"],
                      "torch_value": torch_row["value"] if torch_row else None}
    ratios = {}
    for w in ("A", "B", "C", "D"):
        per_mode = {r["mode"]: r["seconds"] for r in result["rows"]
                    if r["workload"] == w and r["kind"] == "jax-mode"}
        fused_mode = {r["mode"]: r["seconds"] for r in result["rows"]
                      if r["workload"] == w and r["kind"] in ("fused", "fused-train")}
        if per_mode:
            ratios[w] = {"jit": per_mode["manual"] / per_mode["autodiff"],
                         "fused_loop": (fused_mode["manual"] / fused_mode["autodiff"]) if fused_mode else None}
    summary["manual_over_autodiff"] = ratios
    verdicts = []
    for w in ("A", "B", "C"):
        if w not in summary:
            continue
        t = TARGETS[w]
        v = summary[w]["best_value"]
        met = v <= t["target"] if t["better"] == "lower" else v >= t["target"]
        factor = v / t["target"] if t["better"] == "lower" else t["target"] / v
        line = {"workload": w, "target": t["target"], "unit": t["what"], "measured": v, "met": met,
                "factor_off": factor, "best": summary[w]["best_jaxnets"]}
        if w == "C" and summary["C"]["torch_value"] is not None:
            line["torch"] = summary["C"]["torch_value"]
            line["faster_than_torch"] = v < summary["C"]["torch_value"]
            line["met"] = met and line["faster_than_torch"]
        verdicts.append(line)
    if ratios:
        def ratio(w):
            return ratios[w]["fused_loop"] if ratios[w]["fused_loop"] is not None else ratios[w]["jit"]

        worst_model = max(ratios, key=ratio)
        worst = ratio(worst_model)
        verdicts.append({"workload": "manual/autodiff", "target": 1.0, "unit": "ratio", "measured": worst,
                         "met": worst <= 1.0, "factor_off": worst,
                         "best": f"worst of {', '.join(ratios)}: {worst_model}, fused loop of many steps"})
    summary["targets"] = verdicts
    return summary


def format_table(result):
    lines = []
    units = {"A": "ms/iter", "B": "steps/s", "C": "ms/batch", "D": "ms/iter"}
    titles = {"A": "A: digits 784-10-10, full-batch GD, m = 41000",
              "B": "B: TwoLayerNet 784-200-10, SGD batch 200 (with replacement)",
              "C": "C: ConvNet 8x3x3 pad 1 - ReLU - pool 2 - affine 10, N = 64, forward + backward",
              "D": "D: occupancy 5-5-1, full batch 8143 rows (manual/autodiff ratio only)"}
    lines += [f"{titles[w]}" for w in ("A", "B", "C", "D")] + [""]
    lines.append("| workload | implementation | median | vs doc NumPy | % of limit |")
    lines.append("| --- | --- | ---: | ---: | ---: |")
    for w in ("A", "B", "C", "D"):
        for r in result["rows"]:
            if r["workload"] != w:
                continue
            vs = f"{r['vs_doc_numpy']:.1f}x" if r.get("vs_doc_numpy") else "—"
            pct = f"{r['pct_of_limit']:.0f}%" if w != "D" else "—"
            val = f"{r['value']:.0f}" if r["unit"] == "steps/s" else f"{r['value']:.3g}"
            lines.append(f"| {w} | {r['impl']} | {val} {units[w]} | {vs} | {pct} |")
    s = result["summary"]
    lines.append("")
    lines.append("| model | manual / autodiff, fused loop (many steps per call) "
                 "| manual / autodiff, one jit call per step |")
    lines.append("| --- | ---: | ---: |")
    names = {"A": "digits 784-10-10", "B": "TwoLayerNet 784-200-10", "C": "ConvNet", "D": "occupancy 5-5-1"}
    for w, r in s["manual_over_autodiff"].items():
        fl = f"{r['fused_loop']:.2f}" if r["fused_loop"] is not None else "—"
        lines.append(f"| {names[w]} | {fl} | {r['jit']:.2f} |")
    lines.append("")
    lines.append("| target | goal | measured (best jaxnets path) | verdict |")
    lines.append("| --- | ---: | ---: | --- |")
    for v in s["targets"]:
        goal = ("<= " if v["workload"] != "B" else ">= ") + f"{v['target']:g} {v['unit']}"
        meas = f"{v['measured']:.4g} {v['unit']}"
        if v["met"]:
            verdict = "met"
        else:
            verdict = f"missed by {v['factor_off']:.2f}x"
        if "torch" in v:
            verdict += f" (PyTorch {v['torch']:.3g} ms: {'faster' if v['faster_than_torch'] else 'slower'} than it)"
        lines.append(f"| {v['workload']} | {goal} | {meas} ({v['best']}) | {verdict} |")
    lim = result["limits"]
    lines.append("")
    lines.append(
        f"Machine limits (same run): float32 matmul {lim['matmul_gflops']:.0f} GFLOP/s "
        f"(JAX {lim['matmul_gflops_jax']:.0f}, NumPy {lim['matmul_gflops_numpy']:.0f}; {lim['matmul_n']}^3), "
        f"read bandwidth {lim['read_gbps']:.1f} GB/s; one read of A's X: {lim['read_x_float32_ms']:.2f} ms "
        f"float32, {lim['read_x_uint8_ms']:.2f} ms uint8. % of limit = max(FLOPs / matmul peak, "
        f"minimum bytes / bandwidth) / time."
    )
    return "\n".join(lines)


def _machine():
    import jax
    import numpy as np

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cores": os.cpu_count(), "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind), "jax": jax.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "matmul_precision": "float32",
        "openblas_env": {k: os.environ.get(k) for k in OPENBLAS_VARS},
        "openblas_env_cleared_for_this_run": os.environ.get(_REEXEC_FLAG) == "1",
    }
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


def run(quick=False, out=DEFAULT_OUT, torch=True, workloads=("A", "B", "C", "D")):
    """Run the benchmark; returns the result dict (also written to `out/benchmark.json`
    unless out is None)."""
    _jax_setup("float32")
    cfg = CONFIGS["quick" if quick else "default"]
    start = time.perf_counter()
    th, torch_note = _torch() if torch else (None, "skipped (--no-torch)")
    if th is not None:
        th.manual_seed(0)
    result = {"config": {"quick": quick, **cfg}, "machine": _machine(), "torch": torch_note}
    print(f"jaxnets benchmark ({'quick' if quick else 'default'}): {result['machine']['cpu']}, "
          f"{result['machine']['cores']} cores, jax {result['machine']['jax']} "
          f"({result['machine']['backend']}), matmul precision float32; PyTorch: {torch_note}", flush=True)
    print("machine limits ...", flush=True)
    result["limits"] = measure_limits(quick)
    result["rows"], result["work"] = [], {}
    benches = {"A": bench_a, "B": bench_b, "C": bench_c}
    for w in workloads:
        if w == "D":
            result["rows"] += bench_occupancy(cfg)
            continue
        print(f"workload {w} ...", flush=True)
        rows, meta = benches[w](cfg, th)
        result["rows"] += rows
        result["work"][w] = meta
    result["summary"] = _summarise(result)
    result["wall_time_s"] = time.perf_counter() - start
    table = format_table(result)
    result["table_markdown"] = table
    print()
    print(table)
    print(f"\n(total {result['wall_time_s']:.0f} s; load average at start "
          f"{result['machine'].get('load_average')})")
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "benchmark.json").write_text(json.dumps(result, indent=1, default=float))
        print(f"wrote {out / 'benchmark.json'}")
    return result


def _parser():
    p = argparse.ArgumentParser(prog="python -m experiments.benchmark", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a short smoke run (< 1 min): fewer repeats and steps")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="folder for benchmark.json (default runs/benchmark)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch rows even if torch is installed")
    p.add_argument("--workloads", default="ABCD", help="which workloads to run, e.g. AC (default ABCD)")
    p.add_argument("--update-readme", metavar="PATH",
                   help="write the tables into PATH between the benchmark markers")
    p.add_argument("--keep-openblas-env", action="store_true",
                   help=f"do not re-run without {' / '.join(OPENBLAS_VARS)} when they are set")
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    bad = [k for k in OPENBLAS_VARS if k in os.environ]
    if bad and not args.keep_openblas_env and os.environ.get(_REEXEC_FLAG) != "1":
        print(f"note: {', '.join(bad)} set in the environment (slows NumPy on some CPUs); re-running "
              f"this benchmark without them (--keep-openblas-env to keep them)", flush=True)
        env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_VARS}
        env[_REEXEC_FLAG] = "1"
        argv = sys.argv[1:] if argv is None else list(argv)
        os.execve(sys.executable, [sys.executable, "-m", "experiments.benchmark", *argv], env)
    workloads = tuple(w for w in args.workloads.upper() if w in "ABCD")
    if not workloads:
        raise SystemExit("--workloads: give some of A, B, C, D")
    result = run(quick=args.quick, out=args.out, torch=not args.no_torch, workloads=workloads)
    if args.update_readme:
        from experiments import runs

        m = result["machine"]
        note = (f"Generated by `jaxnets bench --update-readme README.md` on "
                f"{time.strftime('%Y-%m-%d %H:%M %Z')}: {m['cpu']}, {m['cores']} cores, jax {m['jax']} "
                f"({m['backend']}); PyTorch: {result['torch']}; load average at start "
                f"{m.get('load_average')}; {result['wall_time_s']:.0f} s.")
        runs.replace_marked_block(args.update_readme, "benchmark", f"{note}\n\n{result['table_markdown']}")
        print(f"wrote the tables into {args.update_readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
