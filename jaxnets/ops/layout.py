"""`Layout`: which forms the layout-dependent ops take, as a value the caller passes.

Some layers can compute the same values in forms that run at different speeds on different
backends: `conv`'s forward and filter gradient (batched per-example products on CPU, one
contraction elsewhere), conv's algorithm (im2col or XLA's convolution primitive), the MLP's
one-pass chunk size. A `Layout` names those choices; it is an immutable, hashable value (a
static argument to `jax.jit`), chosen once by the caller — `jaxnets.grads` for a gradient
mode, a test for each branch — and handed to the ops as an argument (`conv_forward(...,
layout)`, the `layout` field of a `jaxnets.ops.Layers` record). Nothing is read from global
state while a function is traced, so a test runs the accelerator forms on a CPU by passing
`Layout("gpu")`, and every branch keeps running in the test suite at the same tolerances.

All forms compute the same values (the hand-written backward in each of them); only speed
differs.
"""
from typing import NamedTuple

import jax

#: the backends whose forms the ops distinguish: "cpu" and everything else ("gpu" stands
#: for GPU and TPU)
LAYOUTS = ("cpu", "gpu")
BACKENDS = ("cpu", "gpu", "tpu")

#: input channels from which `conv` runs on XLA's convolution primitive rather than im2col:
#: measured on a 2-core CPU (forward + hand-written backward, batch 64, 3x3), the primitive
#: is ~2x faster from 8 channels (C=32 at 14x14: 55 vs 111 ms) and ~3x slower for one
#: channel (C=1 at 28x28: 25 vs 9 ms), where im2col's one wide product wins
CONV_PRIMITIVE_MIN_CHANNELS = 8
CONV_ALGORITHMS = ("im2col", "primitive")


class Layout(NamedTuple):
    """backend: "cpu", "gpu" or "tpu" — whose product forms the ops take (any backend's run
    anywhere; only speed differs). conv: "auto" (im2col below CONV_PRIMITIVE_MIN_CHANNELS
    input channels, the convolution primitive from there on), or "im2col" / "primitive" for
    every conv."""

    backend: str
    conv: str = "auto"

    @property
    def cpu(self):
        """Whether the ops take their CPU forms."""
        return self.backend == "cpu"

    def conv_algorithm(self, channels):
        """How `conv` computes a layer with `channels` input channels."""
        if self.conv != "auto":
            return self.conv
        return "primitive" if channels >= CONV_PRIMITIVE_MIN_CHANNELS else "im2col"

    def for_jax_rules(self):
        """The layout whose forward JAX's own rules differentiate fast (mode "autodiff"):
        on the CPU every conv takes im2col, unless an algorithm is forced. jax.grad of the
        primitive runs its transpose rules — the filter gradient as a convolution with batch
        and channels swapped, the input gradient with the filter's in/out swapped — which
        XLA:CPU runs 9x slower than im2col's products inside lax.scan (one 32 -> 64 channel
        14x14 layer at batch 64: 416 vs 45 ms per gradient; the deep ConvNet's training step
        713 ms), and JAX's rules cannot be told otherwise."""
        return self._replace(conv="im2col") if self.cpu and self.conv == "auto" else self

    def describe(self):
        """One line for reports: the backend forms and the conv algorithm."""
        conv = (f"conv im2col below {CONV_PRIMITIVE_MIN_CHANNELS} input channels, primitive from there"
                if self.conv == "auto" else f"conv {self.conv}")
        return f"{self.backend} forms, {conv}"


def check_layout(layout):
    """`layout` itself, after checking its fields (ValueError naming the bad one)."""
    if not isinstance(layout, Layout):
        raise ValueError(f"layout must be a jaxnets.ops.Layout, got {layout!r}")
    if layout.backend not in BACKENDS:
        raise ValueError(f"layout backend must be one of {BACKENDS}, got {layout.backend!r}")
    if layout.conv not in ("auto",) + CONV_ALGORITHMS:
        raise ValueError(f"layout conv must be 'auto', 'im2col' or 'primitive', got {layout.conv!r}")
    return layout


def default_layout(layout=None):
    """`layout` checked, or for None the layout of the backend JAX runs on
    (`jax.default_backend()`: fixed for the process), conv "auto"."""
    return Layout(jax.default_backend()) if layout is None else check_layout(layout)


__all__ = ["Layout", "LAYOUTS", "BACKENDS", "CONV_PRIMITIVE_MIN_CHANNELS", "CONV_ALGORITHMS", "check_layout",
           "default_layout"]
