"""Cases generated from a layer's examples: seeded, reproducible, saved and replayed as .npz.

Every floating input is drawn in the domain its example suggests (the real line when the
example has negative values; non-negative when its minimum is 0; positive; the open unit
interval for probabilities), in one of VALUE_KINDS:

- normal:   N(0, 1) values (the domain's ordinary values);
- zeros:    30% exact zeros (some -0.0) and the layer's other kink values: ReLU-like kinks;
- ties:     each row's maximum repeated and 2x2 blocks of equal values: tied windows and rows;
- integers: small integers, so zeros, ties and exact sums everywhere;
- small:    values of size 0.01;
- large:    values of size 1000 (overflow in exp, saturation).

Integer inputs (labels) are drawn within the example's range. Each case also gets one of three
upstream gradients (UPSTREAM): random, one-hot and all ones — all ones hides mistakes in
normalisation layers, one-hot isolates one output. A scalar output (a loss) gets a random
cotangent instead of one-hot, never 1, so a backward that ignores it is caught. Every fifth case
of the first example changes the leading (batch) size, to 1 and to N + 1, where the forward
accepts it (each new shape costs a compilation, so the other examples keep theirs).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from jaxnets.verify.op_checks import loss_cotangent

VALUE_KINDS = ("normal", "zeros", "ties", "integers", "small", "large")
UPSTREAM = ("random", "one-hot", "ones")
#: every this many cases, one gets another leading size
LEADING_SIZE_EVERY = 5


@dataclass(frozen=True)
class LayerCase:
    """One generated input: arrays, keyword values and the upstream gradient."""

    index: int
    example: int
    values: str
    upstream: str
    leading: int | None  # the leading size when it differs from the example's
    arrays: tuple
    static: dict
    dout: np.ndarray
    seed: tuple

    @property
    def label(self):
        n = f", N={self.leading}" if self.leading is not None else ""
        return f"case {self.index} ({self.values} values, {self.upstream} upstream{n}, example {self.example})"

    def describe(self):
        """The attributes hints compare between failing and passing cases."""
        out = {"values": self.values, "upstream": self.upstream, "example": self.example}
        if self.arrays and np.ndim(self.arrays[0]):
            out["N"] = int(np.shape(self.arrays[0])[0])
        out.update({k: v for k, v in self.static.items() if isinstance(v, (int, float, str, bool))})
        return out


def domain(a):
    """The domain an example array suggests: "real", "nonneg", "positive", "unit", "binary"."""
    if a.size == 0 or np.min(a) < 0:
        return "real"
    if np.all((a == 0) | (a == 1)):
        return "binary"
    if np.min(a) == 0:
        return "nonneg"
    return "unit" if np.max(a) < 1 else "positive"


def _ties(x, rng):
    """Tie values: each row's maximum repeated at another position, and (2-D and up) 2x2
    blocks of equal values, so windows and rows hold equal maxima."""
    x = x.copy()
    if x.ndim >= 2 and x.shape[-1] > 1 and x.shape[-2] > 1:
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        x[..., 1:h:2, :] = x[..., 0:h:2, :]
        x[..., :, 1:w:2] = x[..., :, 0:w:2]
    if x.ndim >= 1 and x.shape[-1] > 1:
        rows = x.reshape(-1, x.shape[-1])
        j = rng.integers(0, x.shape[-1], rows.shape[0])
        rows[np.arange(rows.shape[0]), j] = rows.max(axis=1)
        x = rows.reshape(x.shape)
    return x


def _real(kind, shape, rng, kinks):
    if kind == "zeros":
        x = rng.standard_normal(shape)
        u = rng.random(shape)
        x = np.where(u < 0.25, 0.0, np.where(u < 0.3, -0.0, x))
        extra = [k for k in kinks if k != 0]
        if extra:
            x = np.where(rng.random(shape) < 0.15, rng.choice(np.asarray(extra, np.float64), shape), x)
        return x
    if kind == "ties":
        return _ties(rng.integers(-3, 4, shape).astype(np.float64) * 0.5 + 0.25, rng)
    if kind == "integers":
        return rng.integers(-2, 3, shape).astype(np.float64)
    scale = {"normal": 1.0, "small": 0.01, "large": 1000.0}[kind]
    return rng.standard_normal(shape) * scale


def _unit(kind, shape, rng):
    if kind == "small":
        return rng.uniform(1e-4, 1e-2, shape)
    if kind == "large":
        return 1.0 - rng.uniform(1e-4, 1e-2, shape)
    if kind in ("ties", "integers"):
        return _ties(rng.choice(np.array([0.25, 0.5, 0.75]), shape), rng)
    return rng.uniform(0.05, 0.95, shape)


def _positive(kind, shape, rng):
    if kind in ("ties", "integers"):
        return _ties(rng.choice(np.array([0.5, 1.0, 1.5, 2.0]), shape), rng)
    lo, hi = {"small": (0.005, 0.02), "large": (500.0, 2000.0)}.get(kind, (0.1, 3.0))
    return rng.uniform(lo, hi, shape)


def draw_array(example_array, kind, shape, rng, kinks=(0.0,)):
    """A float64 array of `shape` in the example array's domain, of value kind `kind`."""
    a = example_array
    if not np.issubdtype(a.dtype, np.floating):
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 1)
        return rng.integers(lo, hi + 1, shape).astype(a.dtype)
    dom = domain(a)
    if dom == "binary":
        return rng.integers(0, 2, shape).astype(np.float64)
    if dom == "unit":
        return _unit(kind, shape, rng)
    if dom == "positive":
        return _positive(kind, shape, rng)
    x = _real(kind, shape, rng, [k for k in kinks if dom == "real" or k >= 0])
    return x if dom == "real" else np.abs(x)


def upstream(kind, shape, rng):
    """An upstream gradient of `shape` of the given UPSTREAM kind (a scalar: a random
    cotangent, or 1 for "ones")."""
    if shape == ():
        return np.asarray(1.0 if kind == "ones" else loss_cotangent(rng))
    if kind == "ones":
        return np.ones(shape)
    if kind == "one-hot":
        d = np.zeros(int(np.prod(shape)))
        d[rng.integers(0, d.size)] = 1.0
        return d.reshape(shape)
    return rng.standard_normal(shape)


def generate(layer, examples, n, seed, out_shape, kinks=(0.0,)):
    """n LayerCases from the examples, deterministic in `seed`. `out_shape(arrays, static)`
    gives the forward's output shape (for the upstream gradient)."""
    cases = []
    n_ex = len(examples)
    for i in range(n):
        # every run of 6 cases has each value kind; cycle c shifts the example and the upstream
        # kind, so each value kind meets every example and every upstream kind within a few cycles
        c, k = divmod(i, len(VALUE_KINDS))
        kind = VALUE_KINDS[k]
        ex = examples[(k + 7 * c) % n_ex]
        up = UPSTREAM[(k + c) % len(UPSTREAM)]
        rng = np.random.default_rng([seed, i])
        leading = None
        if layer.leading_sizes and ex.index == 0 and i % LEADING_SIZE_EVERY == LEADING_SIZE_EVERY - 1:
            leading = layer.leading_sizes[(i // LEADING_SIZE_EVERY) % len(layer.leading_sizes)]
        arrays = []
        for j, a in enumerate(ex.arrays):
            shape = (leading,) + a.shape[1:] if leading is not None and j in layer.batched else a.shape
            arrays.append(draw_array(a, kind if j in layer.wrt else "normal", shape, rng, kinks))
        arrays = tuple(arrays)
        shape = tuple(out_shape(arrays, ex.static))
        if layer.scalar_out and up == "one-hot":
            up = "random"
        cases.append(LayerCase(i, ex.index, kind, up, leading, arrays, dict(ex.static),
                               upstream(up, shape, rng), (int(seed), i)))
    return cases


# ----------------------------------------------------------------------------- .npz

def save_case(path, case, layer_name):
    """Write a case's inputs, keyword values and upstream gradient to `path` (.npz)."""
    arrays = {f"input{k}": a for k, a in enumerate(case.arrays)}
    statics = {k: v for k, v in case.static.items() if isinstance(v, np.ndarray)}
    plain = {k: v for k, v in case.static.items() if not isinstance(v, np.ndarray)}
    meta = {"layer": layer_name, "index": case.index, "example": case.example, "values": case.values,
            "upstream": case.upstream, "leading": case.leading, "seed": list(case.seed), "static": plain,
            "n_inputs": len(case.arrays)}
    np.savez(path, dout=case.dout, meta=json.dumps(meta), **arrays, **{f"static_{k}": v for k, v in statics.items()})


def load_case(path):
    """The LayerCase stored by `save_case` (ValueError naming the file when it is not one)."""
    try:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            arrays = tuple(np.array(data[f"input{k}"]) for k in range(meta["n_inputs"]))
            static = dict(meta["static"])
            static.update({k[len("static_"):]: np.array(data[k]) for k in data.files if k.startswith("static_")})
            dout = np.array(data["dout"])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a case file saved by jaxnets gradcheck ({type(exc).__name__}: {exc})") from None
    return LayerCase(meta["index"], meta["example"], meta["values"], meta["upstream"], meta["leading"], arrays,
                     static, dout, tuple(meta["seed"]))
