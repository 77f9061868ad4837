"""The catalogue of a careless or unlucky user's mistakes and faults, run through the `jaxnets`
command in a subprocess (one case per class): each ends with its exit status (2 for bad input,
130 / 143 for SIGINT / SIGTERM), one line on stderr, no traceback, and every file of the earlier
run byte for byte as it was. The other examples of each class run in-process (`cli.main`, the
same code without a new interpreter) to keep the suite's time down.

The subprocesses run a few at a time in one module fixture; each case's test checks its own
result. The earlier run is one tiny digits run (20 steps on 240 images) made once.
"""
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from experiments import cli, digits
from jaxnets.data import load_sample, write_idx

ROOT = Path(__file__).resolve().parents[1]
RUN = "001_digits_idx"


def snapshot(folder):
    """{relative path: MD5} of every file under `folder`."""
    return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def corrupt_checkpoint(src, dst, change_npz=None, change_meta=None):
    """A copy of checkpoint stem `src` at stem `dst`, its npz bytes or JSON metadata changed."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    npz, meta = src.with_suffix(".npz").read_bytes(), json.loads(src.with_suffix(".json").read_text())
    dst.with_suffix(".npz").write_bytes(change_npz(npz) if change_npz else npz)
    dst.with_suffix(".json").write_text(change_meta(meta) if change_meta else json.dumps(meta))
    return dst


def other_model(meta):
    meta["model"]["config"]["hidden"] = 7  # the arrays are still the 10-unit net's
    return json.dumps(meta)


def step_as_string(meta):
    meta["step"] = str(meta["step"])
    return json.dumps(meta)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """tiny/ (IDX data), runs/001_digits_idx (a finished run with its checkpoint) and faults/
    (broken copies of its files); everything a case may read, made before any case runs."""
    root = tmp_path_factory.mktemp("cli_faults")
    tiny = root / "tiny"
    tiny.mkdir()
    s = load_sample()
    order = np.random.default_rng(0).permutation(len(s.y_train))
    for split, rows in (("train", order[:300]), ("t10k", order[300:400])):
        write_idx(tiny / f"{split}-images-idx3-ubyte.gz", s.x_train[rows])
        write_idx(tiny / f"{split}-labels-idx1-ubyte.gz", s.y_train[rows].astype(np.uint8))
    metrics = digits.main(["--data", f"idx:{tiny}", "--iterations", "20", "--batch-size", "10", "--out",
                           str(root / "runs"), "--checkpoint-every", "10", "--no-progress"], log=lambda *a: None)
    ck = root / "runs" / RUN / "checkpoint"
    faults = root / "faults"
    corrupt_checkpoint(ck, faults / "truncated" / "checkpoint", change_npz=lambda b: b[: len(b) // 2])
    corrupt_checkpoint(ck, faults / "empty" / "checkpoint", change_npz=lambda b: b"")
    corrupt_checkpoint(ck, faults / "list" / "checkpoint", change_meta=lambda m: "[1, 2, 3]")
    corrupt_checkpoint(ck, faults / "keys" / "checkpoint", change_meta=lambda m: json.dumps({"format": m["format"]}))
    corrupt_checkpoint(ck, faults / "string_step" / "checkpoint", change_meta=step_as_string)
    corrupt_checkpoint(ck, faults / "other_model" / "checkpoint", change_meta=other_model)
    for name, params in (("truncated_params", None), ("other_params", {"W1": np.zeros((784, 7), np.float32)})):
        shutil.copytree(root / "runs" / RUN, faults / name)
        data = (root / "runs" / RUN / "params.npz").read_bytes()
        if params is None:
            (faults / name / "params.npz").write_bytes(data[: len(data) // 3])
        else:
            with np.load(root / "runs" / RUN / "params.npz") as f:
                np.savez(faults / name / "params.npz", **{**{k: f[k] for k in f.files}, **params})
    return root, metrics


def _train(*extra):
    return lambda w: ["train", "digits", "--data", f"idx:{w / 'tiny'}", "--out", str(w / "runs"), "--no-progress",
                      "--iterations", "20", "--batch-size", "10", *extra]


def _resume(fault, *extra):
    return lambda w: _train("--overwrite", "--resume", str(w / "faults" / fault / "checkpoint"), *extra)(w)


def _predict(folder):
    return lambda w: ["predict", str(w / "faults" / folder), str(w / "tiny" / "t10k-images-idx3-ubyte.gz")]


#: class -> (argv from the world's root, extra environment, exit status, the line's pattern);
#: subprocesses, one per class of the issue
CASES = {
    "bad option on a finished run": (_train("--overwrite", "--report-every", "0"), {}, 2,
                                     r"argument --report-every: must be an integer >= 1, got '0'"),
    "finished run without --overwrite": (_train(), {}, 2, r"runs/001_digits_idx already holds a run; pass --overwrite"),
    "--out names a file": (lambda w: _train()(w) + ["--out", str(w / "runs" / RUN / "metrics.json")], {}, 2,
                           r"--out .*metrics.json: .*metrics.json is a file, not a folder"),
    "truncated checkpoint": (_resume("truncated"), {}, 2, r"checkpoint.npz: unreadable checkpoint arrays, truncated"),
    "another model's checkpoint": (_resume("other_model"), {}, 2,
                                   r"checkpoint.npz: parameters 'W1' has shape \(784, 10\), model digits .* needs "
                                   r"\(784, 7\)"),
    "resume that would go backwards": (lambda w: _train("--overwrite", "--iterations", "10", "--resume",
                                                        str(w / "runs" / RUN / "checkpoint"))(w), {}, 2,
                                       r"is at step 20, past --iterations 10 .* it would go backwards"),
    "truncated params.npz in predict": (_predict("truncated_params"), {}, 2,
                                        r"params.npz: unreadable parameters, truncated or not a .npz file"),
    "another model's params.npz in predict": (_predict("other_params"), {}, 2,
                                              r"params.npz: parameters 'W1' has shape \(784, 7\), model digits"),
    "size out of range": (lambda w: ["train", "deep_convnet", "--hidden", "0", "--out", str(w / "runs")], {}, 2,
                          r"argument --hidden: must be an integer >= 1, got '0'"),
    "unavailable JAX platform": (_train("--overwrite"), {"JAX_PLATFORMS": "tpu"}, 2,
                                 r"JAX cannot start a platform \$JAX_PLATFORMS='tpu' names: Unable to initialize "
                                 r"backend 'tpu'"),
}
#: signals, sent once training has started (its first progress line): the earlier run is
#: re-run with --overwrite and interrupted, so only the finished folder must survive it
SIGNALS = {"SIGINT": (signal.SIGINT, 130), "SIGTERM": (signal.SIGTERM, 143)}


#: `python -m experiments.cli`, handling Ctrl-C as in a terminal even when this test runs with
#: SIGINT ignored (a shell's background job), which the child would inherit
AS_IN_A_TERMINAL = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                    "from experiments.cli import main; sys.exit(main())")


def _run_cli(argv, env, send=None, timeout=300):
    """(status, stdout, stderr) of the `jaxnets` command with ARGV; with `send`, that signal
    once stderr shows training's first progress line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    env.pop("JAX_ENABLE_X64", None)
    proc = subprocess.Popen([sys.executable, "-c", AS_IN_A_TERMINAL, *argv], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if send is None:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err
    lines = []
    deadline = time.monotonic() + timeout
    for line in proc.stderr:  # progress lines, one at the start and one every few seconds
        lines.append(line)
        if "step" in line or time.monotonic() > deadline:
            break
    time.sleep(0.5)  # inside the first chunk (or its compilation)
    proc.send_signal(send)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, "".join(lines) + err


@pytest.fixture(scope="module")
def results(world):
    """Every case run, three at a time, against the same world; its files snapshotted around."""
    root, _ = world
    sig_root = root / "signals"
    for name in SIGNALS:  # each signal case gets its own copy of the earlier run
        shutil.copytree(root / "runs", sig_root / name)
    before = snapshot(root)
    jobs = {case: (argv(root), env, None) for case, (argv, env, _, _) in CASES.items()}
    for name, (signum, _) in SIGNALS.items():
        argv = ["train", "digits", "--data", f"idx:{root / 'tiny'}", "--out", str(sig_root / name), "--overwrite",
                "--iterations", "1000000", "--batch-size", "10"]
        jobs[name] = (argv, {}, signum)
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {case: pool.submit(_run_cli, *job) for case, job in jobs.items()}
        done = {case: f.result() for case, f in futures.items()}
    return done, before, snapshot(root)


def assert_one_line(status, out, err, want_status, pattern, progress_allowed=False):
    lines = err.splitlines()
    if progress_allowed:  # training's progress lines come first
        assert all(line.startswith("[") for line in lines[:-1]), err
        lines = lines[-1:]
    assert "Traceback" not in out + err, err
    assert status == want_status, f"status {status}, stderr: {err}"
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.parametrize("case", CASES)
def test_each_class_of_bad_input_is_one_line_with_status_2_and_loses_nothing(case, results):
    done, before, after = results
    status, out, err = done[case]
    _, _, want_status, pattern = CASES[case]
    assert_one_line(status, out, err, want_status, pattern)
    changed = {k for k in before if not k.startswith("signals/") and before[k] != after.get(k)}
    added = {k for k in after if not k.startswith("signals/") and k not in before}
    assert not changed and not added, f"changed {sorted(changed)}, added {sorted(added)}"


@pytest.mark.parametrize("name", SIGNALS)
def test_a_signal_during_training_saves_the_last_chunk_and_touches_no_finished_run(name, results, world):
    done, before, after = results
    status, out, err = done[name]
    _, want_status = SIGNALS[name]
    partial = f"signals/{name}/{RUN}.partial/checkpoint"
    assert_one_line(status, out, err, want_status,
                    rf"interrupted by {name} at step \d+ of 1000000; checkpoint saved: continue with --resume "
                    rf".*{partial}; .*{RUN} is untouched", progress_allowed=True)
    finished = {k: v for k, v in before.items() if k.startswith(f"signals/{name}/{RUN}/")}
    assert finished and all(after.get(k) == v for k, v in finished.items())
    assert {k for k in after if k.startswith(f"signals/{name}/{RUN}/")} == set(finished)
    step = int(err.rsplit(" at step ", 1)[1].split()[0])
    assert json.loads((world[0] / f"{partial}.json").read_text())["step"] == step  # resumable there


# --------------------------------------------------------------------------- in-process

def cli_in_process(argv):
    """(status, stdout, stderr) of `cli.main(argv)` in this process (argparse's exit included)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(argv)
        except SystemExit as e:
            status = e.code
    return status, out.getvalue(), err.getvalue()


#: the other examples of each class: (argv from the world's root, the line's pattern)
MORE = {
    "--batch-size 0": (_train("--overwrite", "--batch-size", "0"), r"argument --batch-size: must be an integer >= 1"),
    "bad optimizer setting": (_train("--overwrite", "--optimizer", "adam", "--beta1", "2"),
                              r"optimizer 'adam': beta1 must be a finite number in \[0, 1\), got 2.0"),
    "--compare-modes with --resume": (_train("--overwrite", "--compare-modes", "--resume", "x"),
                                      r"--compare-modes .* does not go with --resume"),
    "--seed -1 names --seed": (_train("--overwrite", "--seed", "-1"), r"argument --seed: must be an integer >= 0"),
    "empty checkpoint.npz": (_resume("empty"), r"checkpoint.npz: unreadable checkpoint arrays"),
    "checkpoint.json a list": (_resume("list"), r"checkpoint metadata is a JSON object, this file holds a JSON list"),
    "checkpoint.json lacks keys": (_resume("keys"), r"checkpoint metadata lacks step, model, train_config"),
    "checkpoint step a string": (_resume("string_step"), r"step must be an integer >= 0, got '20' \(str\)"),
    "two_layer --hidden 0": (lambda w: ["train", "two_layer", "--hidden", "0"], r"argument --hidden: must be an integer"),
    "two_layer --reg -1": (lambda w: ["train", "two_layer", "--reg", "-1"], r"argument --reg: must be a finite number"),
    "two_layer --n-train 0": (lambda w: ["train", "two_layer", "--n-train", "0"], r"argument --n-train: must be"),
    "convnet --filters 0": (lambda w: ["train", "convnet", "--filters", "0"], r"argument --filters: must be an integer"),
    "deep_convnet --filters 32,0": (lambda w: ["train", "deep_convnet", "--filters", "32,0"],
                                    r"--filters takes positive numbers of filters, got '32,0'"),
    "deep_convnet --reg -1e-4": (lambda w: ["train", "deep_convnet", "--reg=-1e-4"], r"argument --reg: must be"),
    "deep_convnet --dropout 1": (lambda w: ["train", "deep_convnet", "--dropout", "1"], r"argument --dropout: must be"),
    "occupancy --learning-rate 0": (lambda w: ["train", "occupancy", "--learning-rate", "0"],
                                    r"argument --learning-rate: must be a finite number in \(0, inf\)"),
    "normalization --scales 1": (lambda w: ["train", "normalization", "--scales", "1"], r"argument --scales: must be"),
    "dropout --rates 0,1.5": (lambda w: ["train", "dropout", "--rates", "0,1.5"], r"--rates takes comma-separated"),
    "dropout --epochs 0": (lambda w: ["train", "dropout", "--epochs", "0"], r"argument --epochs: must be"),
    "vanishing_gradients --scales 0": (lambda w: ["train", "vanishing_gradients", "--scales", "1", "0"],
                                       r"argument --scales: must be a finite number in \(0, inf\)"),
    "vanishing_gradients --steps 1": (lambda w: ["train", "vanishing_gradients", "--steps", "1"],
                                      r"argument --steps: must be an integer >= 2"),
    "predict --show -1": (lambda w: ["predict", str(w / "runs" / RUN), "x.png", "--show", "-1"],
                          r"argument --show: must be an integer >= 0"),
}


@pytest.mark.parametrize("case", MORE)
def test_more_examples_of_each_class_in_process(case, world):
    root, _ = world
    before = snapshot(root / "runs")
    argv, pattern = MORE[case]
    status, out, err = cli_in_process(argv(root))
    assert_one_line(status, out, err, 2, pattern)
    assert snapshot(root / "runs") == before


def test_metrics_record_the_dtypes_the_run_really_used(world):
    """The test session runs with jax_enable_x64 on, as `JAX_ENABLE_X64=1 jaxnets train` does."""
    _, metrics = world
    assert metrics["dtype"] == {"params": "float32", "initial_draws": "float64", "jax_enable_x64": True}
    assert metrics["train_config"]["dtype"] == "float32"
