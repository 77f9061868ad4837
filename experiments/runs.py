"""Run folders: every experiment writes metrics.json, params.npz and its PNG plots into one
folder, and the README's results table is built from those files (never typed by hand)."""
import json
import platform
import time
from pathlib import Path

import jax
import numpy as np

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


def read_metrics(run_dir):
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def save_params(run_dir, params, model_state=None):
    """params.npz, and state.npz when the model carries state (batch norm's running
    statistics, which inference needs)."""
    path = Path(run_dir) / "params.npz"
    np.savez(path, **{k: np.asarray(v) for k, v in params.items()})
    if model_state:
        np.savez(Path(run_dir) / "state.npz", **{k: np.asarray(v) for k, v in model_state.items()})
    return path


def load_params(run_dir):
    """(params, model state or None) of a run folder."""
    with np.load(Path(run_dir) / "params.npz") as f:
        params = {k: f[k] for k in f.files}
    state_path = Path(run_dir) / "state.npz"
    if not state_path.is_file():
        return params, None
    with np.load(state_path) as f:
        return params, {k: f[k] for k in f.files}


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
