"""Run folders: every experiment writes metrics.json, params.npz and its PNG plots into one
folder, and the README's results table is built from those files (never typed by hand)."""
import json
import platform
import time
import zipfile
from pathlib import Path

import jax
import numpy as np

from jaxnets.data import DataError
from jaxnets.models.checks import check_arrays_fit, expected_arrays
from jaxnets.training.checkpoint import jsonable

DEFAULT_RUNS_DIR = Path("runs")


CHECKPOINT_STEM = "checkpoint"


def make_run_dir(name, root=None):
    """A fresh folder `root/name`: the files of an earlier run there are removed, except its
    checkpoint (`checkpoint.npz` / `.json`), which a resumed run starts from."""
    path = Path(root or DEFAULT_RUNS_DIR) / name
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*"):
        if old.is_file() and old.stem != CHECKPOINT_STEM:
            old.unlink()
    return path


def device_info():
    dev = jax.devices()[0]
    return {
        "backend": jax.default_backend(),
        "device": str(dev.device_kind),
        "device_count": jax.device_count(),
        "jax": jax.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def write_metrics(run_dir, metrics):
    """Write metrics.json (config, data source, histories, final accuracies, wall time,
    device, grad mode) and return its path."""
    metrics = dict(metrics)
    metrics.setdefault("device", device_info())
    metrics.setdefault("written_at", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    path = Path(run_dir) / "metrics.json"
    path.write_text(json.dumps(jsonable(metrics), indent=1))
    return path


def read_metrics(run_dir, needs=()):
    """A run folder's metrics.json as a dict holding the keys `needs`; DataError naming the
    file when it is unreadable, not JSON, or lacks them."""
    path = Path(run_dir) / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable ({type(err).__name__}: {err})") from None
    if not isinstance(metrics, dict) or any(k not in metrics for k in needs):
        raise DataError(f"{path}: not a run's metrics (needs {', '.join(needs)})")
    return metrics


def read_npz(path, what):
    """{name: array} of an .npz file; DataError naming it when it is truncated or not an npz."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: unreadable {what}, truncated or not a .npz file ({type(err).__name__}: {err})") from None


def save_params(run_dir, params, model_state=None):
    """params.npz, and state.npz when the model carries state (batch norm's running
    statistics, which inference needs)."""
    path = Path(run_dir) / "params.npz"
    np.savez(path, **{k: np.asarray(v) for k, v in params.items()})
    if model_state:
        np.savez(Path(run_dir) / "state.npz", **{k: np.asarray(v) for k, v in model_state.items()})
    return path


def load_params(run_dir, model=None):
    """(params, model state or None) of a run folder; with `model`, checked against the names
    and shapes its config gives (another model's params.npz is refused, naming the file)."""
    path, state_path = Path(run_dir) / "params.npz", Path(run_dir) / "state.npz"
    params = read_npz(path, "parameters")
    state = read_npz(state_path, "model state") if state_path.is_file() else None
    if model is not None:
        want_params, want_state = expected_arrays(model)
        check_arrays_fit(model, params, want_params, "parameters", path)
        check_arrays_fit(model, state or {}, want_state, "model state", state_path)
    return params, state


def replace_marked_block(path, name, content):
    """Replace the text between `<!-- NAME:start -->` and `<!-- NAME:end -->` in file `path`
    (how the README's generated tables are updated)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = Path(path).read_text()
    if start not in text or end not in text:
        raise ValueError(f"{path}: markers {start} ... {end} not found")
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    Path(path).write_text(f"{before}{start}\n{content}\n{end}{after}")
