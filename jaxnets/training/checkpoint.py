"""Checkpoints as two files: `<path>.npz` (arrays) and `<path>.json` (everything else); no pickle.

- `<path>.npz`: every array leaf of the parameters, of the model's state (batch norm's
  running statistics, if any) and of the optax state, flattened with its key path as the name
  (`params['W1']`, `model_state['running_mean1']`, `opt_state[1].count`, ...), plus `step`;
- `<path>.json`: format tag, step, model name and config, training config, histories, the
  npz names with shapes and dtypes of both pytrees, any `extra` JSON, library versions.

`path` is a stem: `runs/002/checkpoint` writes `runs/002/checkpoint.npz` and
`runs/002/checkpoint.json` (a trailing `.npz` / `.json` on `path` is ignored). Loading reads the
npz with `allow_pickle=False`. The optimiser state comes back as a dict key path -> array;
`restore_opt_state` puts the leaves into the structure of a freshly initialised state of the
same optimiser, matching them by key path, so no code objects or tree definitions are stored.
Both files are written to temporary names and renamed into place, JSON last; `step` is in
both and must agree on load.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnets.models import build_model

FORMAT = "jaxnets-checkpoint/3"
#: older formats this version reads: /2 had no model state (it is empty)
READABLE = (FORMAT, "jaxnets-checkpoint/2")

__all__ = [
    "Checkpoint", "save_checkpoint", "load_checkpoint", "restore_opt_state",
    "model_from_checkpoint", "checkpoint_files", "jsonable",
]


class Checkpoint(NamedTuple):
    """A loaded checkpoint. `opt_state` maps key paths to arrays (see `restore_opt_state`)."""

    params: dict
    opt_state: dict
    model_state: dict
    step: int
    model_name: str
    model_config: dict
    train_config: dict
    history: dict
    extra: dict


def jsonable(value):
    """`value` in plain JSON types: dicts with string keys, lists for tuples and arrays,
    Python numbers for NumPy/JAX scalars, non-finite floats as strings ("nan", "inf"). Used
    to write metrics and to compare configs the way they read back from JSON."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.generic, np.ndarray, jax.Array)):
        return jsonable(np.asarray(value).tolist()) if np.ndim(value) else jsonable(np.asarray(value).item())
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def checkpoint_files(path) -> tuple[Path, Path]:
    """The (npz, json) file pair of checkpoint stem `path`."""
    path = Path(path)
    if path.suffix in (".npz", ".json"):
        path = path.with_suffix("")
    return Path(f"{path}.npz"), Path(f"{path}.json")


def _flatten(tree, prefix):
    """{prefix + keystr(path): leaf} for every leaf of `tree`."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {prefix + jax.tree_util.keystr(p): leaf for p, leaf in leaves}


def _named(what, tree):
    """{name: (npz key, array)} for a flat dict, keyed like `what['name']`."""
    return {name: (what + jax.tree_util.keystr((jax.tree_util.DictKey(name),)), np.asarray(v))
            for name, v in tree.items()}


def _spec(arrays):
    return {k: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype)} for k, v in arrays.items()}


def _atomic_write(path: Path, write):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(path, *, params, opt_state, step, model_name, model_config, train_config,
                    history=None, extra=None, model_state=None) -> Path:
    """Write checkpoint stem `path` (parent folders created; an older checkpoint is replaced).

    params, model_state: flat dicts name -> array (the models' parameters and running
    statistics; model_state None or {} for a model without state); opt_state: any optax state
    pytree; the configs, history and extra must be JSON-able (NaN/inf are rejected so the JSON
    stays standard). Returns the JSON file's path.
    """
    npz_path, json_path = checkpoint_files(path)
    model_state = model_state or {}
    for what, tree in (("params", params), ("model_state", model_state)):
        if not isinstance(tree, dict) or not all(isinstance(k, str) for k in tree):
            raise ValueError(f"{what} must be a flat dict with string names")
    named = {what: _named(what, tree) for what, tree in (("params", params), ("model_state", model_state))}
    opt_arrays = {k: np.asarray(v) for k, v in _flatten(opt_state, "opt_state").items()}

    arrays = {key: v for entries in named.values() for key, v in entries.values()}
    arrays.update(opt_arrays)
    arrays["step"] = np.asarray(step, np.int64)
    meta = {
        "format": FORMAT,
        "step": int(step),
        "model": {"name": model_name, "config": model_config},
        "train_config": train_config,
        "history": history or {},
        **{what: {name: {"key": key, **_spec({0: v})[0]} for name, (key, v) in entries.items()}
           for what, entries in named.items()},
        "opt_state": _spec(opt_arrays),
        "extra": extra or {},
        "versions": {"jax": jax.__version__, "numpy": np.__version__},
    }
    text = json.dumps(meta, indent=1, allow_nan=False)  # fails before anything is written
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(npz_path, lambda f: np.savez(f, **arrays))
    _atomic_write(json_path, lambda f: f.write(text.encode()))
    return json_path


def load_checkpoint(path) -> Checkpoint:
    """Read checkpoint stem `path`; a missing, foreign or inconsistent checkpoint raises
    ValueError naming the problem."""
    npz_path, json_path = checkpoint_files(path)
    if not json_path.is_file() or not npz_path.is_file():
        raise ValueError(f"no checkpoint at {path} (need {json_path.name} and {npz_path.name})")
    try:
        meta = json.loads(json_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{json_path} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") not in READABLE:
        raise ValueError(f"{json_path}: unknown checkpoint format {meta.get('format')!r}, expected {FORMAT!r}")
    with np.load(npz_path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}

    step = int(arrays.get("step", -1))
    if step != meta["step"]:
        raise ValueError(f"{path}: arrays are from step {step}, metadata from step {meta['step']}")

    def take(key, spec, what):
        value = arrays.get(key)
        if value is None or list(value.shape) != spec["shape"] or str(value.dtype) != spec["dtype"]:
            raise ValueError(f"{npz_path}: {what} {key!r} missing or not {spec}")
        return value

    params = {name: jnp.asarray(take(spec["key"], spec, "parameter")) for name, spec in meta["params"].items()}
    model_state = {name: jnp.asarray(take(spec["key"], spec, "model state leaf"))
                   for name, spec in meta.get("model_state", {}).items()}
    opt_state = {key: take(key, spec, "optimiser state leaf") for key, spec in meta["opt_state"].items()}
    return Checkpoint(
        params=params, opt_state=opt_state, model_state=model_state, step=step,
        model_name=meta["model"]["name"], model_config=meta["model"]["config"],
        train_config=meta["train_config"], history=meta["history"], extra=meta["extra"],
    )


def restore_opt_state(checkpoint: Checkpoint, template):
    """The checkpoint's optimiser state in the structure of `template` (e.g.
    `optimizer.init(params)` of the same optimiser): leaves matched by key path; the key
    paths, shapes and dtypes must agree exactly."""
    paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    keys = ["opt_state" + jax.tree_util.keystr(p) for p, _ in paths_leaves]
    if sorted(keys) != sorted(checkpoint.opt_state):
        raise ValueError(
            f"optimiser state in the checkpoint has leaves {sorted(checkpoint.opt_state)}, "
            f"this optimiser has {sorted(keys)} (different optimiser or schedule?)"
        )
    restored = []
    for key, (_, want) in zip(keys, paths_leaves, strict=True):
        want, got = jnp.asarray(want), checkpoint.opt_state[key]
        if want.shape != got.shape or want.dtype != got.dtype:
            raise ValueError(f"optimiser state {key}: checkpoint {got.shape} {got.dtype}, expected {want.shape} {want.dtype}")
        restored.append(jnp.asarray(got))
    return jax.tree.unflatten(treedef, restored)


def model_from_checkpoint(checkpoint: Checkpoint):
    """Rebuild the checkpoint's model from `jaxnets.models.MODELS` and its stored config."""
    return build_model(checkpoint.model_name, checkpoint.model_config)
