"""Which backend's array layout the ops choose, and a way to force one.

Some layers pick the product layout XLA runs fastest on the backend at hand (`dense.
weight_gradient`, `conv`'s forward and filter gradient, the MLP's one-pass chunk size). Both
branches compute the same values; only speed differs. Left to `jax.default_backend()`, a
CPU-only test run would never execute the accelerator branch, so a mistake there would
reach a GPU unnoticed. `forced_layout("gpu")` makes the ops take that branch on any device
(and `forced_layout("cpu")` the CPU branch on a GPU), which is how the test suite runs every
branch at the same tolerances.

The choice is read while a function is traced: a function jitted under one layout keeps it.
Jit afresh (a new function object) inside `forced_layout` to get the other branch.
"""
import contextlib

import jax

#: the layouts the ops distinguish: "cpu" and everything else ("gpu" stands for GPU and TPU)
LAYOUTS = ("cpu", "gpu")

_forced = []


def layout_backend():
    """The backend whose layout the ops use: the innermost `forced_layout`, else
    `jax.default_backend()` ("cpu", "gpu", "tpu")."""
    return _forced[-1] if _forced else jax.default_backend()


def cpu_layout():
    """Whether the ops take their CPU layout."""
    return layout_backend() == "cpu"


@contextlib.contextmanager
def _pushed(stack, value):
    """`value` on top of `stack` within the block (the three contexts below: the choices are
    read at trace time from the top of their stack, so blocks nest)."""
    stack.append(value)
    try:
        yield value
    finally:
        stack.pop()


@contextlib.contextmanager
def forced_layout(backend):
    """Within the block, ops trace their `backend` layout branch ("cpu", "gpu" or "tpu")
    whatever device they run on."""
    if backend not in ("cpu", "gpu", "tpu"):
        raise ValueError(f"forced_layout: backend must be 'cpu', 'gpu' or 'tpu', got {backend!r}")
    with _pushed(_forced, backend):
        yield backend


#: input channels from which `conv` runs on XLA's convolution primitive rather than im2col:
#: measured on a 2-core CPU (forward + hand-written backward, batch 64, 3x3), the primitive
#: is ~2x faster from 8 channels (C=32 at 14x14: 55 vs 111 ms) and ~3x slower for one
#: channel (C=1 at 28x28: 25 vs 9 ms), where im2col's one wide product wins
CONV_PRIMITIVE_MIN_CHANNELS = 8
CONV_ALGORITHMS = ("im2col", "primitive")

_forced_conv = []
_autodiff = []


def conv_algorithm(channels):
    """How `conv` computes a layer with `channels` input channels: the innermost
    `forced_conv_algorithm`, else "primitive" from CONV_PRIMITIVE_MIN_CHANNELS on, "im2col"
    below — except on the CPU layout inside `differentiated_by_jax`, which always takes
    im2col. Both give the same values (the hand-written backward in either form)."""
    if _forced_conv:
        return _forced_conv[-1]
    if _autodiff and cpu_layout():
        # jax.grad of the primitive runs its transpose rules: the filter gradient as a
        # convolution with batch and channels swapped, the input gradient with the filter's
        # in/out swapped. XLA:CPU runs those layouts 9x slower than im2col's products inside
        # lax.scan (one 32 -> 64 channel 14x14 layer at batch 64: 416 vs 45 ms per gradient;
        # the deep ConvNet's training step 713 ms), and JAX's rules cannot be told otherwise.
        return "im2col"
    return "primitive" if channels >= CONV_PRIMITIVE_MIN_CHANNELS else "im2col"


@contextlib.contextmanager
def differentiated_by_jax():
    """Within the block, the ops are traced to be differentiated by JAX's own rules (the
    "autodiff" gradient mode), so they pick the forms whose autodiff runs fast."""
    with _pushed(_autodiff, True):
        yield


@contextlib.contextmanager
def forced_conv_algorithm(algorithm):
    """Within the block, every conv traces `algorithm` ("im2col" or "primitive") whatever its
    channel count (how the tests run both on the suite's small geometries)."""
    if algorithm not in CONV_ALGORITHMS:
        raise ValueError(f"forced_conv_algorithm: algorithm must be one of {CONV_ALGORITHMS}, got {algorithm!r}")
    with _pushed(_forced_conv, algorithm):
        yield algorithm


def layout_key():
    """Everything the traced program of an op depends on besides its inputs: the backend
    layout, any forced conv algorithm and `differentiated_by_jax` (for caches of jitted
    functions)."""
    return layout_backend(), (_forced_conv[-1] if _forced_conv else None), bool(_autodiff)


__all__ = ["LAYOUTS", "layout_backend", "cpu_layout", "forced_layout", "CONV_PRIMITIVE_MIN_CHANNELS",
           "CONV_ALGORITHMS", "conv_algorithm", "forced_conv_algorithm", "differentiated_by_jax", "layout_key"]
