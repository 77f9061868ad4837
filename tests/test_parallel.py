"""Data-parallel training (jaxnets.training with a mesh): 4 CPU devices give the parameters of one device,
two jax.distributed processes on 127.0.0.1 give those of a single process, and bad process
settings fail with clear errors in bounded time.

The device and multi-process runs happen in subprocesses (tests/_parallel_worker.py): the
device count (XLA_FLAGS) and jax.distributed must be set before JAX starts, and this session
has x64 on. Every subprocess has a deadline and is killed in a `finally`; ports are free
loopback ports picked by binding to port 0. Run with -s to see the measured differences.
"""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxnets import training as parallel
from jaxnets.training import checkpoint as ckpt
from jaxnets.training import train

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("_parallel_worker.py")
sys.path.insert(0, str(WORKER.parent))
import _parallel_worker as worker  # noqa: E402

PARAM_TOL = 1e-5  # float32 parameters after 50 SGD steps, D devices vs one
DEVICES_DEADLINE_S = 150  # generous: the machine is shared; the runs take ~30 s
PROCESSES_DEADLINE_S = 90


# ---------------------------------------------------------------------------------------------
# Subprocess plumbing


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(devices=1, **extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JAX_", "XLA_")) and "proxy" not in k.lower()}  # loopback only
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
               PYTHONUNBUFFERED="1", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Children:
    """Started worker processes, each with a log file; all killed on exit from the block."""

    def __init__(self, folder):
        self.folder, self.procs = Path(folder), {}

    def start(self, name, args, **env):
        log = open(self.folder / f"{name}.log", "w")
        proc = subprocess.Popen([sys.executable, str(WORKER), *map(str, args)], cwd=ROOT,
                                env=child_env(**env), stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = (proc, log, time.monotonic())
        return proc

    def wait(self, name, deadline):
        proc, _, started = self.procs[name]
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} did not finish in time; log:\n{self.log(name)}")
        return proc.returncode, time.monotonic() - started

    def log(self, name, tail=3000):
        self.procs[name][1].flush()
        text = (self.folder / f"{name}.log").read_text(errors="replace")
        return "\n".join(line for line in text[-tail:].splitlines() if not line.startswith("    @"))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for proc, log, _ in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            log.close()


def wait_for_file(path, deadline, children, names):
    while not Path(path).exists():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {n}\n{children.log(n)}" for n in names)
            pytest.fail(f"{path} was not written in time\n{logs}")
        time.sleep(0.2)
    return json.loads(Path(path).read_text())


# ---------------------------------------------------------------------------------------------
# In this process (one device)


def test_process_settings_are_checked_before_connecting(monkeypatch):
    for name in (parallel.ENV_COORDINATOR, parallel.ENV_NUM_PROCESSES, parallel.ENV_PROCESS_ID):
        monkeypatch.delenv(name, raising=False)
    assert parallel.initialize_distributed() is False  # nothing set: single process

    with pytest.raises(ValueError, match="num_processes, process_id missing"):
        parallel.initialize_distributed("127.0.0.1:1234")
    monkeypatch.setenv(parallel.ENV_COORDINATOR, "127.0.0.1:1234")
    monkeypatch.setenv(parallel.ENV_NUM_PROCESSES, "2")
    with pytest.raises(ValueError, match="process_id missing"):
        parallel.initialize_distributed()
    with pytest.raises(ValueError, match=r"process_id 2 \(from argument\) is not in 0..1"):
        parallel.initialize_distributed(process_id=2)
    monkeypatch.setenv(parallel.ENV_PROCESS_ID, "one")
    with pytest.raises(ValueError, match=r"\$JAX_PROCESS_ID='one' is not valid"):
        parallel.initialize_distributed()
    monkeypatch.setenv(parallel.ENV_PROCESS_ID, "1")
    with pytest.raises(ValueError, match="num_processes must be >= 1"):
        parallel.initialize_distributed(num_processes=0, process_id=0)
    for address in ("localhost", "127.0.0.1:0", "127.0.0.1:http", ":1234"):
        with pytest.raises(ValueError, match="coordinator address"):
            parallel.initialize_distributed(address)
    with pytest.raises(ValueError, match="timeout_s"):
        parallel.initialize_distributed(timeout_s=0)
    jax.devices()  # the backend of this session is running: too late to join a job
    with pytest.raises(RuntimeError, match="before any other JAX call"):
        parallel.initialize_distributed()


def test_one_device_mesh_is_train(tmp_path):
    """In this session (one device, x64 on, float32 training) the data-parallel path on a
    one-device mesh ends where train.train ends, divergence handling included."""
    model, params, config = worker.two_layer_setup()
    x, y = worker.make_data(64, (worker.TWO_LAYER["input_size"],), worker.TWO_LAYER["num_classes"], 5)
    mesh = parallel.data_mesh()
    assert mesh.size == 1 and parallel.process_rows(64, mesh) == slice(0, 64)
    for config in (config.replace(iterations=20), config.replace(learning_rate=1e3, decay=1.0)):
        single = train(model, params, (x, y, x[:9], y[:9]), config, progress=False)
        dp = parallel.train_data_parallel(model, params, parallel.local_shard((x, y, x[:9], y[:9]), mesh),
                                          config, mesh=mesh, progress=False, checkpoint_path=tmp_path / "ck")
        diff = worker.max_abs_diff(dp.params, single.params)
        print(f"\n1-device mesh vs train.train, TwoLayerNet lr {config.learning_rate}: "
              f"{dp.steps_done} steps, diverged: {dp.diverged is not None}, max |dparam| = {diff:.3g}")
        assert diff <= PARAM_TOL
        assert (dp.steps_done, dp.diverged) == (single.steps_done, single.diverged)
        assert dp.history["loss"] == pytest.approx(single.history["loss"], abs=1e-6)
        assert {k: v for k, v in dp.history.items() if k != "loss"} == \
            {k: v for k, v in single.history.items() if k != "loss"}
        saved = ckpt.load_checkpoint(tmp_path / "ck")
        assert saved.step == dp.steps_done and worker.max_abs_diff(saved.params, dp.params) == 0.0
    assert single.diverged is not None and 2 <= single.steps_done < 50  # the lr 1e3 run did diverge
    with pytest.raises(ValueError, match=r"train: x has feature shape \(5,\), expected \(12,\)"):
        parallel.train_data_parallel(model, params, (x[:, :5], y), config, mesh=mesh, progress=False)
    with pytest.raises(ValueError, match="single axis 'data'"):
        parallel.train_data_parallel(model, params, (x, y), config, progress=False,
                                     mesh=jax.sharding.Mesh(np.array(jax.devices()), ("batch",)))


# ---------------------------------------------------------------------------------------------
# 4 devices in one process


def test_four_devices_end_with_the_parameters_of_one(tmp_path):
    out = tmp_path / "devices.json"
    with Children(tmp_path) as children:
        children.start("devices", ["devices", out], devices=4)
        code, seconds = children.wait("devices", time.monotonic() + DEVICES_DEADLINE_S)
        assert code == 0, children.log("devices")
    report = json.loads(out.read_text())
    print(f"\n4 CPU devices vs train.train on 1 device, 50 steps float32 ({seconds:.1f} s):")
    for run in report["runs"]:
        print(f"  {run['model']:4s} {run['mode']:10s} batch={run['batch_size']!s:4s} "
              f"max |dparam| 4-dev {run['max_diff_4dev_vs_train']:.3g}, "
              f"1-dev mesh {run['max_diff_1dev_mesh_vs_train']}, max |dloss| {run['max_loss_diff']:.3g}")
    print(f"  sharded gradient step HLO: {report['hlo']}")
    print(f"  resumed from a data-parallel checkpoint vs uninterrupted: {report['resume']}")

    combos = {(r["model"], r["mode"]) for r in report["runs"]}
    assert {("mlp", "manual"), ("mlp", "autodiff"), ("conv", "manual"), ("conv", "autodiff"), ("fc_bn", "manual"),
            ("lm", "manual")} <= combos
    assert {r["batch_size"] for r in report["runs"]} == {None, 16}  # full batch and minibatches
    for run in report["runs"]:
        where = f"{run['model']} {run['mode']} batch {run['batch_size']}"
        assert run["steps"] == 50 and run["dtype"] == "float32", where
        assert run["max_diff_4dev_vs_train"] <= PARAM_TOL, where
        if run["max_diff_1dev_mesh_vs_train"] is not None:
            assert run["max_diff_1dev_mesh_vs_train"] <= PARAM_TOL, where
        assert run["max_loss_diff"] <= PARAM_TOL, where
        assert run["same_reports"], where
        assert run["loss_first_last"][1] < run["loss_first_last"][0], where
    # Really data-parallel: in the compiled gradient step of a batch of 8 rows each device
    # multiplies its 8/4 = 2 rows (no dot has 8 rows), and the gradient (manual backward or
    # jax.grad) is summed across devices by an all-reduce.
    for mode, hlo in report["hlo"].items():
        assert hlo["all_reduce"] >= 1, mode
        assert {"f32[2,16]", "f32[2,3]"} <= set(hlo["dot_shapes"]), (mode, hlo)
        assert not any("8" in s.strip("f32[]").split(",") for s in hlo["dot_shapes"]), (mode, hlo)
    resume = report["resume"]  # checkpoint at 15, resumed to 30, vs an uninterrupted run
    assert resume["steps"] == 30 and resume["report_steps"] == [0, 10, 15, 20, 30], resume  # 15: the first run's end
    assert resume["max_diff"] <= PARAM_TOL and resume["max_loss_diff"] <= PARAM_TOL, resume
    errors = report["errors"]
    assert "global batch_size 10 does not divide across 4 devices" in errors["batch"]
    assert "global batch (full batch: all 94 training rows) does not divide across 4 devices" in errors["full_batch"]
    assert "94 training rows do not divide across 4 devices" in errors["rows"]


# ---------------------------------------------------------------------------------------------
# Two processes with jax.distributed


def test_two_processes_end_with_the_parameters_of_one(tmp_path):
    """Process 0 takes its settings from the environment, process 1 from flags; each has 2 CPU
    devices (4 in all) and reads only its rows of the .npy files; a third, ordinary process
    trains on all rows with train.train."""
    worker.write_dataset(tmp_path)
    address = f"127.0.0.1:{free_port()}"
    deadline = time.monotonic() + PROCESSES_DEADLINE_S
    with Children(tmp_path) as children:
        children.start("p0", ["worker", tmp_path, tmp_path / "p0.npz"], devices=2,
                       JAX_COORDINATOR_ADDRESS=address, JAX_NUM_PROCESSES=2, JAX_PROCESS_ID=0)
        children.start("p1", ["worker", tmp_path, tmp_path / "p1.npz", "--coordinator", address,
                              "--num-processes", 2, "--process-id", 1], devices=2)
        children.start("ref", ["reference", tmp_path, tmp_path / "ref.npz"])
        results = {name: children.wait(name, deadline) for name in ("p0", "p1", "ref")}
        for name, (code, _) in results.items():
            assert code == 0, f"{name} exited with {code}:\n{children.log(name)}"
    ref, p0, p1 = (np.load(tmp_path / f"{n}.npz") for n in ("ref", "p0", "p1"))
    params = ("W1", "b1", "W2", "b2")
    diff = max(float(np.max(np.abs(p0[k].astype(np.float64) - ref[k]))) for k in params)
    between = max(float(np.max(np.abs(p0[k] - p1[k]))) for k in params)
    loss_diff = float(np.max(np.abs(p0["loss"] - ref["loss"])))
    print(f"\n2 processes x 2 devices vs 1 process, TwoLayerNet manual 50 steps float32 "
          f"({results['p0'][1]:.1f} s): max |dparam| {diff:.3g}, between processes {between}, "
          f"max |dloss| {loss_diff:.3g}, loss {ref['loss'][0]:.4f} -> {ref['loss'][-1]:.4f}")
    for r in (p0, p1):
        assert (int(r["process_count"]), int(r["device_count"]), int(r["local_device_count"])) == (2, 4, 2)
        assert int(r["steps"]) == 50 and r["W1"].dtype == np.float32
        assert str(r["cpu_collectives"]) == "gloo"
    assert (int(p0["process_index"]), int(p1["process_index"])) == (0, 1)
    # each process read only its rows: 120 training rows -> 60 each; 30 validation rows
    # over 4 devices -> 8 per device, the last device holding 6 and 2 padding rows
    assert p0["local_rows"].tolist() == [60, 16] and p1["local_rows"].tolist() == [60, 14]
    assert diff <= PARAM_TOL and between == 0.0 and loss_diff <= PARAM_TOL
    assert p0["val_acc"].tolist() == ref["val_acc"].tolist()
    assert ref["loss"][-1] < ref["loss"][0]


def test_bad_process_settings_fail_clearly_and_in_bounded_time(tmp_path):
    """All at once, each case on its own port:
    - process 1 with no coordinator listening: CoordinatorUnreachableError after its timeout;
    - process 0 expecting 2 processes, alone: JAX ends the process after the timeout (a
      fatal error, not an exception) — it must not hang, and our line names what to check;
    - process 1 started with num_processes=3 against a 2-process coordinator: ValueError;
    - two processes with different training configs: ValueError on both."""
    worker.write_dataset(tmp_path)
    deadline = time.monotonic() + PROCESSES_DEADLINE_S
    closed = f"127.0.0.1:{free_port()}"
    alone = f"127.0.0.1:{free_port()}"
    mismatch = f"127.0.0.1:{free_port()}"
    differ = f"127.0.0.1:{free_port()}"
    with Children(tmp_path) as children:
        children.start("unreachable", ["connect", closed, 1, 2, 2])
        children.start("alone", ["connect", alone, 0, 2, 1])
        children.start("m0", ["worker", tmp_path, tmp_path / "m0", "--coordinator", mismatch,
                              "--num-processes", 2, "--process-id", 0], devices=2)
        children.start("m1", ["worker", tmp_path, tmp_path / "m1", "--coordinator", mismatch,
                              "--num-processes", 3, "--process-id", 1], devices=2)
        children.start("d0", ["worker", tmp_path, tmp_path / "d0", "--coordinator", differ,
                              "--num-processes", 2, "--process-id", 0], devices=2)
        children.start("d1", ["worker", tmp_path, tmp_path / "d1", "--coordinator", differ,
                              "--num-processes", 2, "--process-id", 1, "--bad-lr"], devices=2)

        code, seconds = children.wait("unreachable", deadline)
        answer = json.loads(children.log("unreachable").strip().splitlines()[-1])
        print(f"\nunreachable coordinator: {answer['error'][:90]}... after {answer['seconds']:.1f} s")
        assert code == 0 and answer["error"].startswith("CoordinatorUnreachableError: could not reach")
        assert 2.0 <= answer["seconds"] < 10

        code, seconds = children.wait("alone", deadline)
        print(f"coordinator left alone: exit code {code} after {seconds:.1f} s")
        assert code != 0, children.log("alone")
        assert "not all 2 processes connected in time" in children.log("alone")

        error = wait_for_file(tmp_path / "m1.json", deadline, children, ["m0", "m1"])["error"]
        print(f"num_processes 3 vs 2: {error[:110]}...")
        assert "inconsistent process settings: this process was started as process 1 of 3" in error
        assert "runs 2 processes" in error

        for name in ("d0", "d1"):
            error = wait_for_file(tmp_path / f"{name}.json", deadline, children, ["d0", "d1"])["error"]
            assert "runs a different model, training config" in error, (name, error)
        print(f"different configs: {error[:100]}...")
