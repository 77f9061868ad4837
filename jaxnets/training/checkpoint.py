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
import numbers
import os
import zipfile
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnets.models import MODELS, build_model
from jaxnets.models.checks import check_arrays_fit, expected_arrays
from jaxnets.models.saved import jsonable

FORMAT = "jaxnets-checkpoint/3"
#: older formats this version reads: /2 had no model state (it is empty)
READABLE = (FORMAT, "jaxnets-checkpoint/2")

__all__ = [
    "Checkpoint", "save_checkpoint", "load_checkpoint", "restore_opt_state",
    "model_from_checkpoint", "checkpoint_files", "jsonable", "check_resumable",
]

#: the metadata a checkpoint.json must hold, and the JSON type of each
REQUIRED = {"step": "an integer", "model": "an object", "train_config": "an object", "history": "an object",
            "params": "an object", "opt_state": "an object", "extra": "an object"}


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


def _whole(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _read_meta(json_path: Path) -> dict:
    """checkpoint.json's metadata, checked for the keys and types `load_checkpoint` reads."""
    try:
        text = json_path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{json_path}: unreadable ({type(err).__name__}: {err})") from None
    if not text.strip():
        raise ValueError(f"{json_path}: empty file, not checkpoint metadata")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{json_path} is not valid JSON: {err}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{json_path}: checkpoint metadata is a JSON object, this file holds a JSON "
                         f"{type(meta).__name__}")
    if meta.get("format") not in READABLE:
        raise ValueError(f"{json_path}: unknown checkpoint format {meta.get('format')!r}, expected {FORMAT!r}")
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ValueError(f"{json_path}: checkpoint metadata lacks {', '.join(missing)}")
    for key, kind in REQUIRED.items():
        ok = _whole(meta[key]) and meta[key] >= 0 if key == "step" else isinstance(meta[key], dict)
        if not ok:
            raise ValueError(f"{json_path}: {key} must be {kind}{' >= 0' if key == 'step' else ''}, got "
                             f"{meta[key]!r} ({type(meta[key]).__name__})")
    model = meta["model"]
    if not isinstance(model.get("name"), str) or not isinstance(model.get("config"), dict):
        raise ValueError(f"{json_path}: model must be {{\"name\": ..., \"config\": {{...}}}}, got {model!r}")
    for what in ("params", "model_state", "opt_state"):
        for name, spec in meta.get(what, {}).items():
            ok = (isinstance(spec, dict) and isinstance(spec.get("shape"), list)
                  and all(_whole(d) and d >= 0 for d in spec["shape"]) and isinstance(spec.get("dtype"), str)
                  and (what == "opt_state" or isinstance(spec.get("key"), str)))
            if not ok:
                raise ValueError(f"{json_path}: {what} entry {name!r} must give shape, dtype"
                                 f"{'' if what == 'opt_state' else ' and key'}, got {spec!r}")
    return meta


def _read_arrays(npz_path: Path) -> dict:
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(f"{npz_path}: unreadable checkpoint arrays, truncated or not a .npz file "
                         f"({type(err).__name__}: {err})") from None


def _check_fit(model, params, model_state, source):
    want_params, want_state = expected_arrays(model)
    check_arrays_fit(model, params, want_params, "parameters", source)
    check_arrays_fit(model, model_state, want_state, "model state", source)


def load_checkpoint(path) -> Checkpoint:
    """Read checkpoint stem `path`; a missing, foreign, corrupted or inconsistent checkpoint
    raises ValueError naming the file and the problem, among them parameters whose names or
    shapes do not fit the (registered) model the metadata names."""
    npz_path, json_path = checkpoint_files(path)
    if not json_path.is_file() or not npz_path.is_file():
        raise ValueError(f"no checkpoint at {path} (need {json_path.name} and {npz_path.name})")
    meta = _read_meta(json_path)
    arrays = _read_arrays(npz_path)
    step = arrays.get("step")
    if step is None or step.shape != () or not np.issubdtype(step.dtype, np.integer):
        raise ValueError(f"{npz_path}: no integer 'step' array (not a jaxnets checkpoint?)")
    step = int(step)
    if step != meta["step"]:
        raise ValueError(f"{path}: arrays are from step {step}, metadata from step {meta['step']}")

    def take(key, spec, what):
        value = arrays.get(key)
        if value is None or list(value.shape) != spec["shape"] or str(value.dtype) != spec["dtype"]:
            raise ValueError(f"{npz_path}: {what} {key!r} missing or not {spec}")
        return value

    params = {name: take(spec["key"], spec, "parameter") for name, spec in meta["params"].items()}
    model_state = {name: take(spec["key"], spec, "model state leaf")
                   for name, spec in meta.get("model_state", {}).items()}
    opt_state = {key: take(key, spec, "optimiser state leaf") for key, spec in meta["opt_state"].items()}
    if meta["model"]["name"] in MODELS:  # a registered model: its config gives the shapes
        _check_fit(build_model(meta["model"]["name"], meta["model"]["config"]), params, model_state, npz_path)
    return Checkpoint(
        params={k: jnp.asarray(v) for k, v in params.items()}, opt_state=opt_state,
        model_state={k: jnp.asarray(v) for k, v in model_state.items()}, step=step,
        model_name=meta["model"]["name"], model_config=meta["model"]["config"],
        train_config=meta["train_config"], history=meta["history"], extra=meta["extra"],
    )


def check_resumable(checkpoint: Checkpoint, model, config, n_train=None, source="checkpoint") -> None:
    """ValueError unless `config` can continue `checkpoint` with `model`: the same model and
    config, parameters (and state) of the shapes it gives, the same step-defining training fields (all but iterations and report_every),
    not past `config.iterations` (a resumed run trains up to that many steps in total), and
    (when given) the same number of training rows. `source` names the checkpoint."""
    if checkpoint.model_name != model.name or checkpoint.model_config != jsonable(model.config):
        raise ValueError(
            f"cannot resume from {source}: it is for model {checkpoint.model_name!r} {checkpoint.model_config}, "
            f"not {model.name!r} {jsonable(model.config)}"
        )
    _check_fit(model, checkpoint.params, checkpoint.model_state, source)
    saved = checkpoint.train_config
    defaults = {"optimizer": "sgd", "optimizer_args": {}, "clip_norm": None}  # checkpoints from before these
    for field in ("mode", "learning_rate", "decay", "batch_size", "seed", "dtype", "optimizer", "optimizer_args",
                  "clip_norm"):
        if saved.get(field, defaults.get(field)) != getattr(config, field):
            raise ValueError(
                f"cannot resume from {source}: it has {field}={saved.get(field)!r}, this run "
                f"{getattr(config, field)!r} (a resumed run must repeat the same steps)"
            )
    if checkpoint.step > config.iterations:
        raise ValueError(
            f"cannot resume from {source}: it is at step {checkpoint.step}, past the {config.iterations} "
            f"iterations asked for (iterations count every step, the checkpoint's included); it would go backwards"
        )
    if n_train is not None and checkpoint.extra.get("n_train") != n_train:
        raise ValueError(
            f"cannot resume from {source}: it was trained on {checkpoint.extra.get('n_train')} rows, the data has {n_train}"
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
