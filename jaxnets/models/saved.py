"""A model's parameters (and state) in one file, with the model's name and config, so the
model can be rebuilt from the file alone: `save_params` / `load_params`.

The format (`FORMAT`, "jaxnets-params/1") is one NumPy `.npz`, read with `allow_pickle=False`:

- `params/NAME`: every parameter array (`params/W1`, `params/b1`, ...), as saved;
- `state/NAME`: every array of the model's state (batch norm's running statistics), if any;
- `jaxnets.json`: a 0-d string array holding JSON `{"format": ..., "model": name,
  "config": the model's config}` — the name of a registered factory (`jaxnets.models.MODELS`)
  and the keyword arguments it was built with.

Any tool that reads `.npz` files reads it (`np.load(path)["params/W1"]`). Training
checkpoints (`jaxnets.training.checkpoint`) hold the optimiser's state as well; this file
holds what inference and a new training run need.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from jaxnets.models.base import Model, build_model
from jaxnets.models.checks import check_arrays_fit, expected_arrays

__all__ = ["FORMAT", "Saved", "save_params", "load_params", "jsonable"]

FORMAT = "jaxnets-params/1"
_META = "jaxnets.json"


class Saved(NamedTuple):
    """What `load_params` returns: the model rebuilt from its name and config, its parameters
    and its state ({} for a model without state), as JAX arrays."""

    model: Model
    params: dict
    state: dict


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


def save_params(path, model: Model, params: dict, state: dict | None = None) -> Path:
    """Write `model`'s `params` (and `state`, e.g. `TrainResult.model_state`) to `path` (".npz"
    is added when missing), checked against the names and shapes the model's config gives.
    Returns the path written."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    want_params, want_state = expected_arrays(model)
    check_arrays_fit(model, params, want_params, "parameters", path)
    check_arrays_fit(model, state or {}, want_state, "model state", path)
    meta = json.dumps({"format": FORMAT, "model": model.name, "config": jsonable(model.config)})
    arrays = {f"params/{k}": np.asarray(v) for k, v in params.items()}
    arrays.update({f"state/{k}": np.asarray(v) for k, v in (state or {}).items()})
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays, **{_META: np.array(meta)})
    tmp.replace(path)
    return path


def load_params(path, model: Model | None = None) -> Saved:
    """The model, parameters and state saved by `save_params`. Without `model` the model is
    rebuilt from the file's name and config (`build_model`); with one, the file must be for
    the same model and config. ValueError naming the file for anything else (not such a file,
    another model's arrays, truncated)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable .npz file ({type(err).__name__}: {err})") from None
    try:
        meta = json.loads(str(arrays.pop(_META)))
        if meta["format"] != FORMAT:
            raise ValueError(meta["format"])
        name, config = meta["model"], meta["config"]
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"{path}: not a {FORMAT} file (use save_params; {type(err).__name__}: {err})") from None
    if model is None:
        model = build_model(name, config)
    elif model.name != name or jsonable(model.config) != config:
        raise ValueError(f"{path}: holds model {name!r} {config}, not {model.name!r} {jsonable(model.config)}")
    params = {k.removeprefix("params/"): v for k, v in arrays.items() if k.startswith("params/")}
    state = {k.removeprefix("state/"): v for k, v in arrays.items() if k.startswith("state/")}
    want_params, want_state = expected_arrays(model)
    check_arrays_fit(model, params, want_params, "parameters", path)
    check_arrays_fit(model, state, want_state, "model state", path)
    return Saved(model, {k: jax.numpy.asarray(v) for k, v in params.items()},
                 {k: jax.numpy.asarray(v) for k, v in state.items()})
