"""A call's arguments in the engine's flat form: differentiated leaves, other arrays, statics.

Every subject is called with positional arguments and keyword values that may be pytrees (a
params dict, a `bn_param` dict holding arrays and strings, a tuple of arrays). The engine
flattens them once per case into three kinds of leaves:

- "diff": floating arrays inside the differentiated arguments (`wrt`) — what gradients are
  taken with respect to, named `x`, `params['W1']`, ...;
- "array": every other array (integer labels, boolean masks, PRNG keys, arrays inside a
  parameter dict such as a running mean) — traced by jit, never differentiated;
- "static": everything else (strides, eps, mode strings, None): part of the cache key of
  every jitted function, so one pool of compiled programs serves every case with the same
  statics, whatever their array values.

`Split` is that partition's hashable description (the key), `split` makes it, `join` puts
leaves back into (args, kwargs).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import jax
import numpy as np


def is_array(v):
    return isinstance(v, (np.ndarray, np.generic, jax.Array))


def is_float_array(v):
    return is_array(v) and jax.dtypes.issubdtype(v.dtype, np.floating)


def is_key(leaf):
    """A PRNG key: a typed key array, or a legacy key's uint32 bits (no other integer data is
    uint32 in the code the checker sees: labels and indices are int32 or int64)."""
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        return True
    return is_array(leaf) and leaf.dtype == np.uint32


class Opaque:
    """A static leaf that is not hashable, keyed by identity (a case that holds one is
    compiled for itself)."""

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return f"<{type(self.value).__name__}>"


def _static(v):
    try:
        hash(v)
        return v
    except TypeError:
        return Opaque(v)


@dataclass(frozen=True)
class Split:
    """How (args, kwargs) split into leaves: the treedef, each leaf's kind, the static
    values, and the names of the differentiated leaves."""

    treedef: object
    kinds: tuple  # per leaf: "diff" | "array" | "static"
    statics: tuple
    names: tuple  # of the diff leaves
    diff_args: tuple = ()  # the positional argument each diff leaf belongs to
    array_args: tuple = ()  # the positional argument (-1: a keyword value) of each array leaf

    @property
    def key(self):
        return (self.treedef, self.kinds, self.statics)


def leaf_name(arg_names, path):
    """`x`, `params['W1']`, `bn_param['running_mean']`, `kwargs['eps']` for a leaf path of
    the (args, kwargs) tuple."""
    top = path[0].idx
    if top == 1:  # keyword values
        return path[1].key + jax.tree_util.keystr(path[2:])
    i = path[1].idx
    base = arg_names[i] if i < len(arg_names) else f"arg{i}"
    return base + jax.tree_util.keystr(path[2:])


def split(args, kwargs, wrt, arg_names=()):
    """(Split, diff leaves, array leaves) of a call; leaves keep their values (NumPy)."""
    flat, treedef = jax.tree_util.tree_flatten_with_path((tuple(args), dict(kwargs)))
    kinds, statics, names, diff, arrays, diff_args, array_args = [], [], [], [], [], [], []
    for path, v in flat:
        if is_array(v):
            arg = path[1].idx if path[0].idx == 0 else -1
            if arg in wrt and is_float_array(v):
                kinds.append("diff")
                names.append(leaf_name(arg_names, path))
                diff.append(v)
                diff_args.append(arg)
            else:
                kinds.append("array")
                arrays.append(v)
                array_args.append(arg)
        else:
            kinds.append("static")
            statics.append(_static(v))
    return Split(treedef, tuple(kinds), tuple(statics), tuple(names), tuple(diff_args), tuple(array_args)), diff, arrays


def join(sp, diff, arrays):
    """(args, kwargs) from a Split and its leaves (the inverse of `split`)."""
    diff, arrays, statics = iter(diff), iter(arrays), iter(sp.statics)
    leaves = []
    for kind in sp.kinds:
        if kind == "diff":
            leaves.append(next(diff))
        elif kind == "array":
            leaves.append(next(arrays))
        else:
            s = next(statics)
            leaves.append(s.value if isinstance(s, Opaque) else s)
    args, kwargs = jax.tree_util.tree_unflatten(sp.treedef, leaves)
    return tuple(args), dict(kwargs)


def fresh(tree):
    """A deep copy of a pytree of NumPy arrays and Python values (what a NumPy rule that
    writes into its arguments — `dnext_c += ...`, `bn_param['running_mean'] = ...` — is
    given, so no other oracle sees the change)."""
    return copy.deepcopy(tree)


def flat_outputs(outputs):
    """(leaves, treedef) of a subject's outputs (a single array is one leaf)."""
    leaves, treedef = jax.tree_util.tree_flatten(outputs)
    return list(leaves), treedef


def changed(before, after):
    """Paths (as names) where two pytrees of arrays differ: what a rule modified in place."""
    out = []
    flat_a = jax.tree_util.tree_flatten_with_path(before)[0]
    flat_b = jax.tree_util.tree_leaves(after)
    for (path, a), b in zip(flat_a, flat_b):
        if is_array(a) and is_array(b) and (np.shape(a) != np.shape(b) or not np.array_equal(a, b, equal_nan=True)):
            out.append(jax.tree_util.keystr(path))
    return out
