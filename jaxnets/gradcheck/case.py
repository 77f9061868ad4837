"""One case type for every check: the arguments of one call, the upstream cotangent, tags.

A `Case` is what every oracle is run on — a built-in op's generated inputs, a model's
parameters and batch, or a case generated from a user's example. `Example` is one valid call
a user gives (or the project knows for a cs231n name); `generate` draws cases from examples,
seeded and reproducible:

- every floating leaf of a differentiated argument is drawn in the domain its example suggests
  or states (`DOMAINS`: the real line, non-negative, positive, the open unit interval,
  {0, 1}), as one of `VALUE_KINDS`: N(0, 1)-like values, exact zeros (and -0.0) and the
  layer's other kink values, ties (each row's maximum repeated, 2x2 blocks), small integers,
  values of size 0.01 and of size 1000, and the domain's boundary (exact 0 for a positive or
  non-negative input, 0 and 1 for a probability) — the points many rules exist for;
- integer leaves (labels, indices) are drawn in the example's range, boolean leaves (masks)
  at random with a fully masked row now and then; other leaves are held fixed;
- the upstream cotangent is random, one-hot or all ones (`UPSTREAM`); a scalar output (a
  loss) gets a random cotangent, never 1, so a rule that ignores it is caught;
- every fifth case of the first example changes the leading (batch) size to 1 or N + 1 where
  the forward accepts it (each new shape costs a compilation).

`save_case` / `load_case` write a case as `.npz` (any pytree of arrays and JSON values:
a `bn_param` holding arrays included) with the subject's name, so replaying it against
another subject is refused.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import jax
import numpy as np

from jaxnets.gradcheck import tree

VALUE_KINDS = ("normal", "zeros", "ties", "integers", "small", "large", "boundary")
UPSTREAM = ("random", "one-hot", "ones")
DOMAINS = ("real", "nonnegative", "positive", "unit", "binary")
#: every this many cases, one gets another leading size
LEADING_SIZE_EVERY = 5


@dataclass(frozen=True)
class Case:
    """One call: positional `args` and keyword `kwargs` (pytrees), the output cotangent
    (a pytree like the outputs, or None until the outputs are known), and tags (value kind,
    upstream kind, example, leading size, stress, seed...). `fd`: True when the inputs are
    kink-free by construction (plain finite differences are an oracle), False when no
    finite differences apply, None when they must find out (one-sided probes)."""

    index: int
    args: tuple
    kwargs: dict
    cotangent: object
    tags: dict = field(default_factory=dict)
    fd: bool | None = None
    title: str = ""

    @property
    def label(self):
        if self.title:
            return self.title
        t = self.tags
        n = f", N={t['leading']}" if t.get("leading") is not None else ""
        return f"case {self.index} ({t.get('values', '?')} values, {t.get('upstream', '?')} upstream{n}, " \
               f"example {t.get('example', 0)})"

    def describe(self):
        """The attributes hints compare between failing and passing cases."""
        out = {k: self.tags[k] for k in ("values", "upstream", "example") if k in self.tags}
        first = self.args[0] if self.args else None
        if tree.is_array(first) and np.ndim(first):
            out["N"] = int(np.shape(first)[0])
        out.update({k: v for k, v in self.kwargs.items() if isinstance(v, (int, float, str, bool))})
        return out


@dataclass(frozen=True)
class Example:
    """One valid call: positional args, keyword values, and the domain of each positional
    argument where it was stated (`--example 4x5:positive`) rather than inferred."""

    args: tuple
    kwargs: dict
    index: int = 0
    domains: tuple = ()  # per positional arg: a DOMAINS name or None (infer from the values)

    @property
    def label(self):
        def short(v):
            if tree.is_array(v):
                return "x".join(map(str, np.shape(v))) or "scalar"
            if isinstance(v, dict):
                return "{" + ", ".join(f"{k}: {short(x)}" for k, x in v.items()) + "}"
            return repr(v)

        stat = ", ".join(f"{k}={short(v)}" for k, v in self.kwargs.items())
        return f"example {self.index} ({', '.join(short(a) for a in self.args)}{'; ' + stat if stat else ''})"

    def domain_of(self, i, leaf):
        stated = self.domains[i] if i < len(self.domains) else None
        return stated or domain(leaf)


def domain(a):
    """The domain an example array suggests: "real", "nonnegative", "positive", "unit" or
    "binary"."""
    a = np.asarray(a)
    if a.size == 0 or np.min(a) < 0 or np.all(a == 0) or np.all(a == 1):
        # all zeros or all ones is an initial value (gamma = ones, beta = zeros), not a domain:
        # drawing from {0, 1} made a gamma**2 bug invisible (issue 27)
        return "real"
    if np.all((a == 0) | (a == 1)):
        return "binary"
    if np.min(a) == 0:
        return "nonnegative"
    return "unit" if np.max(a) < 1 else "positive"


def _ties(x, rng):
    """Each row's maximum repeated at another position and (2-D and up) 2x2 blocks of
    equal values, so windows and rows hold equal maxima."""
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
    scale = {"small": 0.01, "large": 1000.0}.get(kind, 1.0)
    return rng.standard_normal(shape) * scale


def _unit(kind, shape, rng):
    if kind == "small":
        return rng.uniform(1e-4, 1e-2, shape)
    if kind == "large":
        return 1.0 - rng.uniform(1e-4, 1e-2, shape)
    if kind in ("ties", "integers"):
        return _ties(rng.choice(np.array([0.25, 0.5, 0.75]), shape), rng)
    x = rng.uniform(0.05, 0.95, shape)
    if kind == "boundary":  # the closed interval's ends
        u = rng.random(shape)
        x = np.where(u < 0.2, 0.0, np.where(u < 0.4, 1.0, x))
    return x


def _positive(kind, shape, rng, nonnegative=False):
    if kind in ("ties", "integers"):
        return _ties(rng.choice(np.array([0.5, 1.0, 1.5, 2.0]), shape), rng)
    lo, hi = {"small": (0.005, 0.02), "large": (500.0, 2000.0)}.get(kind, (0.1, 3.0))
    x = rng.uniform(lo, hi, shape)
    if kind == "boundary" or (kind == "zeros" and nonnegative):
        x = np.where(rng.random(shape) < 0.3, 0.0, x)
    return x


def draw_float(dom, kind, shape, rng, kinks=(0.0,)):
    """A float64 array of `shape` in domain `dom`, of value kind `kind`."""
    if dom == "binary":
        return rng.integers(0, 2, shape).astype(np.float64)
    if dom == "unit":
        return _unit(kind, shape, rng)
    if dom in ("positive", "nonnegative"):
        return _positive(kind, shape, rng, dom == "nonnegative")
    return _real("normal" if kind == "boundary" else kind, shape, rng, kinks)


def draw_like(leaf, dom, kind, shape, rng, kinks=(0.0,)):
    """A new value for one leaf of an example: floats in their domain, integers in the
    example's range, booleans at random (a fully masked leading row at times); a PRNG key
    (typed, or a legacy key's uint32 bits) is passed through untouched."""
    if tree.is_key(leaf):
        return leaf
    a = np.asarray(leaf)
    if a.dtype == bool:
        m = rng.random(shape) < 0.7
        if m.ndim >= 2 and kind in ("zeros", "boundary"):
            m[0] = False  # a fully masked row: nothing of it may reach the loss
        return m
    if np.issubdtype(a.dtype, np.integer):
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 1)
        return rng.integers(lo, hi + 1, shape).astype(a.dtype)
    return draw_float(dom, kind, shape, rng, kinks).astype(np.float64)


def upstream(kind, shape, rng):
    """A cotangent of `shape` of an UPSTREAM kind (a scalar: a random cotangent, or 1 for
    "ones")."""
    if shape == ():
        return np.asarray(1.0 if kind == "ones" else loss_cotangent(rng))
    if kind == "ones":
        return np.ones(shape)
    if kind == "one-hot":
        d = np.zeros(int(np.prod(shape)))
        d[rng.integers(0, d.size)] = 1.0
        return d.reshape(shape)
    return rng.standard_normal(shape)


def loss_cotangent(rng):
    """A random upstream cotangent for a loss value, |c| in [0.5, 3] with either sign: never
    1, so a rule that ignores it is off by the factor."""
    return float(rng.uniform(0.5, 3.0) * rng.choice([-1.0, 1.0]))


def _with_leading(leaf, n, batched):
    if not batched:
        return leaf
    a = np.asarray(leaf)
    reps = -(-n // a.shape[0])
    return np.concatenate([a] * reps, axis=0)[:n]


def resized(example, batched, n):
    """The example with its batched positional arrays cut or tiled to leading size n."""
    args = tuple(jax.tree_util.tree_map(lambda a: _with_leading(a, n, True), a) if i in batched else a
                 for i, a in enumerate(example.args))
    return Example(args, example.kwargs, example.index, example.domains)


def generate(examples, n, seed, *, wrt_of, out_shapes, batched=(), leading_sizes=(), kinks=(0.0,),
             scalar_out=False):
    """n Cases from the examples, deterministic in `seed`.

    wrt_of(args) -> the differentiated positional indices; out_shapes(args, kwargs) -> the
    output leaves' shapes (for the cotangent); batched: positional indices carrying the batch
    axis; leading_sizes: other leading sizes the forward accepts."""
    cases = []
    n_ex = len(examples)
    for i in range(n):
        # every run of len(VALUE_KINDS) cases has each value kind; cycle c shifts the example and
        # the upstream kind, so each value kind meets every example and upstream kind in a few cycles
        c, k = divmod(i, len(VALUE_KINDS))
        kind = VALUE_KINDS[k]
        ex = examples[(k + 7 * c) % n_ex]
        up = UPSTREAM[(k + c) % len(UPSTREAM)]
        rng = np.random.default_rng([seed, i])
        leading = None
        if leading_sizes and ex.index == 0 and i % LEADING_SIZE_EVERY == LEADING_SIZE_EVERY - 1:
            leading = leading_sizes[(i // LEADING_SIZE_EVERY) % len(leading_sizes)]
            ex = resized(ex, batched, leading)
        wrt = wrt_of(ex.args)
        args = []
        for j, a in enumerate(ex.args):
            leaves, td = jax.tree_util.tree_flatten(a)
            new = []
            for leaf in leaves:
                if not tree.is_array(leaf) or tree.is_key(leaf) or (j not in wrt and tree.is_float_array(leaf)):
                    new.append(leaf)  # statics, keys, and floats that are not differentiated, held fixed
                    continue
                dom = ex.domain_of(j, leaf)
                new.append(draw_like(leaf, dom, kind if j in wrt else "normal", np.shape(leaf), rng, kinks))
            args.append(jax.tree_util.tree_unflatten(td, new))
        args = tuple(args)
        shapes = out_shapes(args, ex.kwargs)
        if scalar_out and up == "one-hot":
            up = "random"
        cot = [upstream(up, tuple(s), rng) for s in shapes]
        tags = {"values": kind, "upstream": up, "example": ex.index, "leading": leading, "seed": (int(seed), i)}
        cases.append(Case(i, args, dict(ex.kwargs), cot, tags))
    return cases


# ----------------------------------------------------------------------------- .npz

_ARRAY = "__array__"


def _encode(v, store):
    """A JSON-able form of a pytree; its arrays go into `store` under their index."""
    if isinstance(v, jax.Array) and jax.dtypes.issubdtype(v.dtype, jax.dtypes.prng_key):
        store.append(np.asarray(jax.random.key_data(v)))
        return {"key": len(store) - 1, "impl": str(jax.random.key_impl(v))}
    if tree.is_array(v):
        store.append(np.asarray(v))
        return {_ARRAY: len(store) - 1}
    if isinstance(v, dict):
        return {"dict": [[k, _encode(x, store)] for k, x in v.items()]}
    if isinstance(v, (tuple, list)):
        return {type(v).__name__: [_encode(x, store) for x in v]}
    if isinstance(v, (str, bool, int, float)) or v is None:
        return {"value": v}
    return {"repr": repr(v)}


def _decode(v, store):
    if "key" in v:
        return jax.random.wrap_key_data(store[v["key"]], impl=v["impl"])
    if _ARRAY in v:
        return store[v[_ARRAY]]
    if "dict" in v:
        return {k: _decode(x, store) for k, x in v["dict"]}
    if "tuple" in v:
        return tuple(_decode(x, store) for x in v["tuple"])
    if "list" in v:
        return [_decode(x, store) for x in v["list"]]
    if "value" in v:
        return v["value"]
    raise ValueError(f"a value that was not saved: {v['repr']}")


def save_case(path, case, subject_name):
    """Write a case to `path` (.npz): its arguments (any pytree), cotangent and tags, and the
    subject it was made for."""
    store = []
    body = {"subject": subject_name, "index": case.index, "tags": _encode(case.tags, store),
            "args": _encode(case.args, store), "kwargs": _encode(case.kwargs, store),
            "cotangent": _encode(case.cotangent, store), "fd": case.fd}
    np.savez(path, meta=json.dumps(body), **{f"a{i}": a for i, a in enumerate(store)})


def load_case(path, subject_name=None):
    """The Case stored by `save_case`; ValueError naming the file when it is not one, or
    when it was saved for another subject than `subject_name`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            body = json.loads(str(data["meta"]))
            store = [np.array(data[f"a{i}"]) for i in range(len(data.files) - 1)]
        case = Case(int(body["index"]), tuple(_decode(body["args"], store)), _decode(body["kwargs"], store),
                    _decode(body["cotangent"], store), _decode(body["tags"], store), body.get("fd"))
        saved_for = body["subject"]
    except (OSError, KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a case file saved by jaxnets gradcheck ({type(exc).__name__}: {exc})") from None
    if subject_name is not None and saved_for != subject_name:
        raise ValueError(f"{path}: this case was saved for {saved_for!r}, not {subject_name!r}")
    return case
