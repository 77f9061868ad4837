"""Run folders: every experiment writes metrics.json, params.npz and its PNG plots into one
folder (`RunFolder`: written aside, moved into place when finished), and the results
table (docs/results.md) is built from those files (never typed by hand)."""
import json
import os
import platform
import shutil
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import jax
import numpy as np

from jaxnets.data import DataError
from jaxnets.models.checks import check_arrays_fit, expected_arrays
from jaxnets.training.checkpoint import checkpoint_files, jsonable

DEFAULT_RUNS_DIR = Path("runs")


CHECKPOINT_STEM = "checkpoint"
PARTIAL = ".partial"


class RunFolder:
    """Where a run's files go. A run writes into `<root>/<name>.partial/` and the folder is
    renamed to `<root>/<name>` only when the run has finished, so a run that fails, is
    interrupted or is refused never touches a finished one. Everything is checked when the
    RunFolder is made, before any data is read or anything written:

    - `root` must be (or be creatable as) a writable folder;
    - `<root>/<name>` holding a finished run is replaced only with `overwrite`, and only once
      the new run has finished (the old folder is renamed aside, the new one into place, the
      old one deleted);
    - `<root>/<name>.partial` holding an unfinished (interrupted) run is continued with
      `--resume <root>/<name>.partial/checkpoint` (`resume` inside it), or replaced with
      `overwrite`; otherwise refused.

    `open()` makes the partial folder before the first write (clearing a stale one only when
    `overwrite`); `finish()` moves it into place; `discard()` removes it after a failure if it
    holds nothing resumable. `checkpoint` is the stem training saves to (always given, so
    Ctrl-C can save the last chunk; kept in the finished folder only when asked for).
    """

    def __init__(self, name, root=None, *, overwrite=False, resume=None, option="--out"):
        self.root = Path(root or DEFAULT_RUNS_DIR)
        self.final = self.root / name
        self.partial = self.root / f"{name}{PARTIAL}"
        self.checkpoint = self.partial / CHECKPOINT_STEM
        self.overwrite = overwrite
        self.continues = resume is not None and _inside(resume, self.partial)
        writable_folder(self.root, option)
        for path in (self.final, self.partial):
            if path.exists() and not path.is_dir():
                raise ValueError(f"{path} is a file, not a run folder; move it or choose another {option}")
        if has_files(self.final) and not overwrite:
            raise ValueError(f"{self.final} already holds a run; pass --overwrite to replace it when the new run "
                             f"finishes (also to continue it with --resume), or choose another {option}")
        if has_files(self.partial) and not (self.continues or overwrite):
            raise ValueError(f"{self.partial} holds an unfinished run; continue it with --resume {self.checkpoint}, "
                             f"or pass --overwrite to start again")

    def open(self):
        """The folder to write into (created now; a stale partial run is cleared first)."""
        if self.partial.exists() and not self.continues:
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True, exist_ok=True)
        return self.partial

    def finish(self, keep_checkpoint=True):
        """Move the finished run into place (replacing the old one only with `overwrite`)."""
        if not keep_checkpoint:
            for f in checkpoint_files(self.checkpoint):
                f.unlink(missing_ok=True)
        if has_files(self.final) and not self.overwrite:  # written by someone else meanwhile
            raise ValueError(f"{self.final} appeared while this run trained; the new run is in {self.partial}")
        aside = self.root / f".{self.final.name}.replaced"
        if aside.exists():
            shutil.rmtree(aside)
        if self.final.exists():
            os.replace(self.final, aside)
        os.replace(self.partial, self.final)
        if aside.exists():
            shutil.rmtree(aside)
        return self.final

    @contextmanager
    def writing(self, keep_checkpoint=True):
        """`with folder.writing() as run_dir:` the block writes into the partial folder, which
        is moved into place when the block ends, and discarded when it raises."""
        run_dir = self.open()
        try:
            yield run_dir
        except BaseException:
            self.discard()
            raise
        self.finish(keep_checkpoint)

    def discard(self):
        """After a failure: remove the partial folder unless it holds a checkpoint to resume."""
        if self.partial.is_dir() and not any(f.is_file() for f in checkpoint_files(self.checkpoint)):
            shutil.rmtree(self.partial)


def _inside(path, folder):
    return Path(path).resolve().parent == Path(folder).resolve()


def has_files(folder):
    return folder.is_dir() and any(folder.iterdir())


def writable_folder(root, option):
    """ValueError unless `root` is a writable folder or can be created as one."""
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{option} {root}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {root}: {existing} is not writable")


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
    (how the generated tables of the documentation pages are updated)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = Path(path).read_text()
    if start not in text or end not in text:
        raise ValueError(f"{path}: markers {start} ... {end} not found")
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    Path(path).write_text(f"{before}{start}\n{content}\n{end}{after}")
