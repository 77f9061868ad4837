"""Workload E: cs231n's normalisation and dropout layers, forward + backward at cs231n-sized
inputs and a transformer's layer norm (batch 32 x 64 tokens x width 128, as 2048 rows), the
hand-written pair and autodiff against PyTorch's own layers (float32 ms per call).

Each layer's candidates are timed round-robin in one group, so a change in the machine's load
hits all of them alike. Where the hand-written pair and autodiff compile to the same XLA
program (dropout: its backward is JAX's derivative of x * mask), the rows say so: their
difference is then the measurement's noise.
"""
import re

import jax
import jax.numpy as jnp
import numpy as np

from experiments.bench.harness import Group, Rows
from jaxnets import ops

#: (name, input shape, jaxnets pair); cs231n-sized inputs, and a transformer block's layer
#: norm over the width of 32 sequences of 64 tokens (the (N, D) pair on their 2048 rows)
LAYER_CASES = (
    ("batch norm", (128, 512), "batchnorm"),
    ("layer norm", (128, 512), "layernorm"),
    ("layer norm, 32 x 64 tokens", (2048, 128), "layernorm"),
    ("spatial batch norm", (64, 32, 28, 28), "spatial_batchnorm"),
    ("dropout 0.5", (128, 512), "dropout"),
)
SAME_PROGRAM = "the same compiled program as autodiff"


def _jax_layer(kind):
    """jit of `(x, gamma, beta, dout) -> (out, dx, dgamma, dbeta)` through the hand-written
    pair, and the same through jax.vjp of the forward (autodiff)."""
    key = jax.random.key(0)
    if kind == "dropout":
        def pair(x, g, b, d):
            out, cache = ops.dropout_forward(x, key, rate=0.5)
            return out, ops.dropout_backward(d, cache)

        def auto(x, g, b, d):
            out, vjp = jax.vjp(lambda x: ops.dropout_forward(x, key, rate=0.5)[0], x)
            return out, vjp(d)[0]
    else:
        fwd, bwd = getattr(ops, f"{kind}_forward"), getattr(ops, f"{kind}_backward")

        def pair(x, g, b, d):
            out, cache = fwd(x, g, b)
            return (out, *bwd(d, cache))

        def auto(x, g, b, d):
            out, vjp = jax.vjp(lambda x, g, b: fwd(x, g, b)[0], x, g, b)
            return (out, *vjp(d))
    return jax.jit(pair), jax.jit(auto)


def pair_and_autodiff(label, pair, auto, args, cfg):
    """A timing Group holding the hand-written pair and autodiff of the same forward on `args`
    (noting when XLA compiled both to one program); the caller adds PyTorch's row."""
    group = Group()
    note = SAME_PROGRAM if same_program(pair, auto, args) else ""
    group.add(f"{label}: jaxnets hand-written pair", "layer", lambda _: pair(*args),
              inner=cfg["inner"], mode="manual", note=note)
    group.add(f"{label}: jaxnets autodiff", "layer-autodiff", lambda _: auto(*args),
              inner=cfg["inner"], mode="autodiff")
    return group


def same_program(f, g, args):
    """Whether jitted f and g compile to the same XLA program for `args` (names and source
    locations aside)."""
    def text(fn):
        t = fn.lower(*args).compile().as_text()
        t = re.sub(r", metadata=\{[^}]*\}", "", t[t.index("ENTRY"):])
        return re.sub(r"\n(FileNames|FunctionNames|FileLocations|StackFrames)\n[\s\S]*?(?=\n\n|$)", "", t)

    return text(f) == text(g)


def _torch_layer(torch, kind, shape):
    f = torch.nn.functional
    if kind == "batchnorm" or kind == "spatial_batchnorm":
        return lambda x, g, b: f.batch_norm(x, None, None, g, b, training=True, eps=1e-5)
    if kind == "layernorm":
        return lambda x, g, b: f.layer_norm(x, (shape[1],), g, b, eps=1e-5)
    return lambda x, g, b: f.dropout(x, 0.5, training=True)


def layer_rows(cfg, torch=None):
    """Forward + backward of each layer of LAYER_CASES: the hand-written pair, autodiff and,
    when torch is given, PyTorch's own layer with autograd, timed round-robin in one group
    per layer (float32 ms per call)."""
    rows = Rows("E", "ms/call")
    rng = np.random.default_rng(0)
    for name, shape, kind in LAYER_CASES:
        features = shape[1]
        x, d = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
        g, b = (rng.standard_normal(features).astype(np.float32) for _ in range(2))
        pair, auto = _jax_layer(kind)
        args = tuple(jnp.asarray(a) for a in (x, g, b, d))
        group = pair_and_autodiff(f"{name} {shape}", pair, auto, args, cfg)
        if torch is not None:
            tx = torch.from_numpy(x).requires_grad_(True)
            tg, tb = torch.from_numpy(g).requires_grad_(True), torch.from_numpy(b).requires_grad_(True)
            td, fn = torch.from_numpy(d), _torch_layer(torch, kind, shape)
            wrt = (tx,) if kind == "dropout" else (tx, tg, tb)

            def torch_call(_, fn=fn, tx=tx, tg=tg, tb=tb, td=td, wrt=wrt):
                out = fn(tx, tg, tb)
                return (out.detach(), *torch.autograd.grad(out, wrt, td))

            group.add(f"{name} {shape}: PyTorch CPU autograd", "torch", torch_call, inner=cfg["inner"])
        group.run(rows, cfg["rounds"])
    return rows.rows
