"""Vanishing and exploding gradients: the norm of dL/dh_t against the time step t for a vanilla
(tanh) RNN and an LSTM at several recurrent-weight scales, from the hand-written BPTT.

    jaxnets train vanishing_gradients [--steps 60] [--scales 0.5 1 2 3] [--seed 0]

One batch of 16 random input sequences (x_t ~ N(0, 1), 8 features), 64 hidden units, h0 = 0,
Wx ~ N(0, 1/8), recurrent weights Wh = scale * Q with Q orthogonal (one per LSTM gate), so
every singular value of Wh is the scale; biases 0 except the LSTM's forget gate, 1 (Gers et al.
2000). The loss reads only the last step, L = mean_n h_{T-1,n} . u for a fixed unit vector u,
so dL/dh_t is the gradient that backprop through time carries from the last step back to step
t: `rnn_through_time` / `lstm_through_time`, the backward scans of the hand-written
`rnn_backward` / `lstm_backward`, give it for every t. Every curve is cross-checked against
jax.grad of the same forward (the cs231n step forwards with a zero added to each h_t: the
gradient of that zero is dL/dh_t). Writes the run folder `vanishing_gradients` with
`gradient_norms.png` (log ||dL/dh_t|| / ||dL/dh_{T-1}|| against t) and metrics.json. float32.

The classic picture (Bengio et al. 1994; Pascanu et al. 2013): in the vanilla RNN each step back
multiplies the gradient by diag(1 - h_t^2) Wh^T, so it shrinks geometrically when the scale is
below about 1 and can grow geometrically above it; the LSTM's cell state passes its gradient
back through the forget gate (dc_{t-1} = dc_t * f) rather than through Wh, and changes far less.
"""
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from experiments import options, plots, runs
from jaxnets import ops

BATCH, INPUTS, HIDDEN = 16, 8, 64
SCALES = (0.5, 1.0, 2.0, 3.0)
FORGET_BIAS = 1.0
CELLS = ("rnn", "lstm")


def problem(cell, steps, seed):
    """(x, h0, Wx, Wh / scale, b, u) for `cell`, from `seed` (the same x and u for both cells)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, steps, INPUTS))
    u = rng.standard_normal(HIDDEN)
    gates = 4 if cell == "lstm" else 1
    cell_rng = np.random.default_rng([seed, gates])
    q = np.concatenate([np.linalg.qr(cell_rng.standard_normal((HIDDEN, HIDDEN)))[0] for _ in range(gates)], axis=1)
    wx = cell_rng.standard_normal((INPUTS, gates * HIDDEN)) / np.sqrt(INPUTS)
    b = np.zeros(gates * HIDDEN)
    if cell == "lstm":
        b[HIDDEN:2 * HIDDEN] = FORGET_BIAS  # gates i, f, o, g along 4H
    arrays = (x, np.zeros((BATCH, HIDDEN)), wx, q, b, u / np.linalg.norm(u))
    return tuple(jnp.asarray(a, jnp.float32) for a in arrays)


def _upstream(u, steps):
    """dL/dh for L = mean_n h_{T-1,n} . u: u / N at the last step, 0 before it."""
    return jnp.zeros((BATCH, steps, HIDDEN), u.dtype).at[:, -1].set(u / BATCH)


def hand_written(cell):
    """jit of (x, h0, Wx, Q, b, u, scale) -> dL/dh_t (T, N, H) from the hand-written BPTT."""
    forward, through_time = ((ops.lstm_forward, ops.lstm_through_time) if cell == "lstm"
                             else (ops.rnn_forward, ops.rnn_through_time))

    def grads(x, h0, wx, q, b, u, scale):
        _, cache = forward(x, h0, wx, scale * q, b)
        return through_time(_upstream(u, x.shape[1]), cache)[0]

    return jax.jit(grads)


def autodiff(cell):
    """jit of the same inputs -> dL/dh_t by jax.grad: the step forwards over time with a zero
    added to each h_t, differentiated with respect to those zeros."""

    def loss(zeros, x, h0, wx, wh, b, u):
        def step(carry, inputs):
            x_t, zero_t = inputs
            if cell == "lstm":
                h, c = carry
                h, c, _ = ops.lstm_step_forward(x_t, h, c, wx, wh, b)
                return (h + zero_t, c), None
            h, _ = ops.rnn_step_forward(x_t, carry, wx, wh, b)
            return h + zero_t, None

        start = (h0, jnp.zeros_like(h0)) if cell == "lstm" else h0
        last, _ = lax.scan(step, start, (jnp.swapaxes(x, 0, 1), zeros))
        h_last = last[0] if cell == "lstm" else last
        return jnp.mean(h_last @ u)

    def grads(x, h0, wx, q, b, u, scale):
        zeros = jnp.zeros((x.shape[1],) + h0.shape, x.dtype)
        return jax.grad(loss)(zeros, x, h0, wx, scale * q, b, u)

    return jax.jit(grads)


def step_norms(dh):
    """||dL/dh_t|| over the batch and the hidden units, for each t."""
    return np.linalg.norm(np.asarray(dh, np.float64).reshape(dh.shape[0], -1), axis=1)


def measure(steps, scales, seed, log=print):
    """{cell: {scale: result}}: the norms of dL/dh_t, their ratio to the last step's, and the
    largest relative difference from autodiff over the steps."""
    results = {}
    for cell in CELLS:
        arrays = problem(cell, steps, seed)
        ours, theirs = hand_written(cell), autodiff(cell)
        results[cell] = {}
        for scale in scales:
            s = jnp.asarray(scale, jnp.float32)
            dh, dh_auto = np.asarray(ours(*arrays, s)), np.asarray(theirs(*arrays, s))
            norms = step_norms(dh)
            diff = step_norms(dh - dh_auto) / np.maximum(step_norms(dh_auto), np.finfo(np.float32).tiny)
            first_over_last = float(norms[0] / norms[-1])
            results[cell][f"{scale:g}"] = {
                "scale": scale, "norms": norms.tolist(), "first_over_last": first_over_last,
                "max_rel_diff_vs_autodiff": float(diff.max()),
            }
            log(f"   {cell:4s} scale {scale:g}: ||dL/dh_0|| / ||dL/dh_{steps - 1}|| = {first_over_last:.2e} "
                f"(hand-written vs jax.grad: max relative difference {diff.max():.1e})")
    return results


def main(argv=None, log=print):
    p = options.parser("jaxnets train vanishing_gradients", __doc__)
    p.add_argument("--steps", type=options.integer(2), default=60, help="time steps T, at least 2 (default 60)")
    p.add_argument("--scales", type=options.POSITIVE, nargs="+", default=list(SCALES),
                   help="recurrent weight scales, each > 0 (default 0.5 1 2 3)")
    p.add_argument("--seed", type=options.SEED, default=0, help="inputs and weights seed (default 0)")
    p.add_argument("--out", default=None, help="runs folder (default ./runs)")
    options.add_overwrite(p)
    args = p.parse_args(argv)
    folder = runs.RunFolder("vanishing_gradients", args.out, overwrite=args.overwrite)
    t0 = time.perf_counter()
    log(f"== vanishing and exploding gradients: RNN and LSTM, {HIDDEN} hidden, {args.steps} steps, "
        f"recurrent weight scales {' '.join(f'{s:g}' for s in args.scales)}")
    results = measure(args.steps, args.scales, args.seed, log)
    worst = max(r["max_rel_diff_vs_autodiff"] for cell in results.values() for r in cell.values())
    metrics = {"experiment": "vanishing and exploding gradients", "cells": list(CELLS), "steps": args.steps,
               "batch": BATCH, "inputs": INPUTS, "hidden": HIDDEN, "forget_bias": FORGET_BIAS,
               "scales": list(args.scales), "seed": args.seed, "dtype": "float32",
               "loss": "mean over the batch of h_{T-1} . u (u a fixed unit vector)", "results": results,
               "max_rel_diff_vs_autodiff": worst, "wall_time_s": time.perf_counter() - t0}
    with folder.writing() as run_dir:
        plots.gradient_norms(run_dir / "gradient_norms.png",
                             {cell: {f"scale {k}": r["norms"] for k, r in rs.items()} for cell, rs in results.items()},
                             {"rnn": "vanilla (tanh) RNN", "lstm": f"LSTM (forget bias {FORGET_BIAS:g})"})
        runs.write_metrics(run_dir, metrics)
    log(f"   hand-written BPTT vs jax.grad: max relative difference {worst:.1e} -> {folder.final}/gradient_norms.png")
    return metrics


if __name__ == "__main__":
    main()
