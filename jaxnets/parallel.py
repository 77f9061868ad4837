"""Data-parallel training over all devices of one host or of several hosts (jax.sharding).

The same models, gradient modes and SGD as `jaxnets.train`, spread over a 1-D `Mesh` whose
only axis is `"data"`:

- the training rows are sharded along `"data"`: device k of the mesh holds rows
  [k*N/D, (k+1)*N/D) of the N training rows (D devices), so a process holds, and loads, only
  the rows of its own devices (`process_rows`, `local_shard`);
- parameters and optimiser state are replicated on every device;
- every step runs the very training chunk of `jaxnets.train` (`train._chunk_fn`: the same
  `lax.scan`, optax update and divergence flags) on a model whose loss pins the batch to the
  `"data"` axis with `with_sharding_constraint`. A minibatch is drawn exactly as on one
  device, `train.sample_batch_indices(key, step, N, batch_size)` over the global row numbers,
  so the D-device run sees the same global batches as a one-device run; the gather from the
  sharded rows and the batch split are XLA's (GSPMD) business.
- the loss is the mean over the GLOBAL batch: under `jit` the arrays are global, so the
  model's `1/N` and the manual backward's batch sums (`x.T @ dout`, `sum(dout, axis=0)`)
  are partitioned by XLA into per-device partial sums plus an all-reduce. Nothing here
  divides by a per-device count; tests/test_parallel.py checks the result against a
  one-device `train.train` run.

One device is the same code path with a one-device mesh. Several hosts: every process calls
`initialize_distributed` (before any other JAX call), then `train_data_parallel` with its
own rows; on CPU the cross-process collectives are gloo's (JAX's default CPU collectives,
set explicitly by `initialize_distributed`).

Not here: checkpoint resumption (a final checkpoint can be written), and model parallelism.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxnets import checkpoint as ckpt
from jaxnets.ops import AUTODIFF
from jaxnets.train import (
    ACCURACY_BATCH,
    FULL_BATCH_REPORT_EVERY,
    MAX_CHUNK,
    RUNNING,
    TrainConfig,
    TrainResult,
    _check_config,
    _chunk_fn,
    _count_correct_impl,
    _fresh_params,
    _prepare_data,
    _Progress,
    _roll_back,
    _reporter,
    _run_chunks,
    _State,
    iterations_per_epoch,
    learning_rate_schedule,
    make_optimizer,
)

DATA_AXIS = "data"
ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"  # JAX's own name (jax.distributed reads it too)
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"  # jaxnets' names: JAX takes these two only as
ENV_PROCESS_ID = "JAX_PROCESS_ID"  # arguments or from Slurm/MPI/TPU/k8s auto-detection
DEFAULT_TIMEOUT_S = 60.0  # seconds to reach the coordinator and all other processes

__all__ = [
    "DATA_AXIS", "ENV_COORDINATOR", "ENV_NUM_PROCESSES", "ENV_PROCESS_ID",
    "CoordinatorUnreachableError", "initialize_distributed", "data_mesh", "process_rows",
    "local_shard", "train_data_parallel",
]


class CoordinatorUnreachableError(TimeoutError):
    """No coordinator answered at the given address within the timeout."""


# ---------------------------------------------------------------------------------------------
# Processes


def _setting(value, env_name, parse, what):
    """(value, source): the argument if given, else the environment variable, else None."""
    if value is not None:
        return value, "argument"
    raw = os.environ.get(env_name)
    if raw is None or raw.strip() == "":
        return None, None
    try:
        return parse(raw.strip()), f"${env_name}"
    except ValueError:
        raise ValueError(f"{what}: ${env_name}={raw!r} is not valid") from None


def _split_address(address):
    """'host:port' (IPv6 as '[::1]:port') -> (host, port); ValueError naming the problem."""
    if not isinstance(address, str) or ":" not in address:
        raise ValueError(f"coordinator address must be 'host:port', got {address!r}")
    host, _, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host:
        raise ValueError(f"coordinator address {address!r} has no host")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"coordinator address {address!r}: port must be 1..65535")
    return host, int(port)


def _wait_for_coordinator(host, port, timeout_s):
    """Retry a plain TCP connect until the coordinator listens or `timeout_s` passes. Only a
    probe: jax.distributed's own client aborts the whole process (SIGABRT, no Python
    exception) when its connect deadline passes, so reachability is checked first."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            with socket.create_connection((host, port), timeout=min(left, 2.0)):
                return
        except OSError as err:
            last = err
        time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
    raise CoordinatorUnreachableError(
        f"could not reach the jax.distributed coordinator at {host}:{port} within {timeout_s:g} s "
        f"({last or 'timed out'}). Process 0 must be running with the same coordinator address "
        "(it listens on that port); check the host, port and firewall."
    )


def _check_port_free(port):
    """Process 0 binds the coordinator service on every interface at `port`."""
    for family, addr in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue
        try:
            # as gRPC does: a port in TIME_WAIT (a recent run) can be bound again
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((addr, port))
            return
        except OSError as err:
            if err.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
                raise ValueError(
                    f"coordinator port {port} is already in use on this host; choose another port"
                ) from err
        finally:
            sock.close()


def _backends_started():
    try:
        from jax._src import xla_bridge
        return xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):  # private API moved: let jax.distributed say it
        return False


def initialize_distributed(coordinator=None, num_processes=None, process_id=None, *,
                           timeout_s=DEFAULT_TIMEOUT_S, local_device_ids=None,
                           cpu_collectives="gloo", verbose=True) -> bool:
    """Join a multi-process JAX job with `jax.distributed.initialize`; call it first, before
    any other JAX call (creating an array or listing devices starts the backend).

    Each setting comes from its argument, else from the environment:
    coordinator   ($JAX_COORDINATOR_ADDRESS) 'host:port' of process 0, which serves there;
    num_processes ($JAX_NUM_PROCESSES) the number of processes, >= 1;
    process_id    ($JAX_PROCESS_ID) this process, 0..num_processes-1, distinct per process.
    None of the three set: a single-process run, nothing is done and False is returned. Some
    but not all set, or values out of range: ValueError. Otherwise returns True once every
    process has connected and the backend has started (jax.process_count() is checked
    against num_processes: a process started with a different count than the coordinator's
    gets a ValueError).

    timeout_s: how long to wait for the coordinator (processes 1..) and for all processes to
        connect. A coordinator that does not answer within it raises
        CoordinatorUnreachableError. If the coordinator is up but not all `num_processes`
        processes arrive in time, JAX's client terminates the process (SIGABRT, "DEADLINE
        EXCEEDED ... RegisterTask"); the line printed just before names the settings to check.
    local_device_ids: restrict this process to these local devices (e.g. one GPU each).
    cpu_collectives: `jax_cpu_collectives_implementation` for CPU devices ("gloo", JAX's
        default, or "mpi"); None leaves the setting alone.
    """
    coordinator, c_src = _setting(coordinator, ENV_COORDINATOR, str, "coordinator")
    num_processes, n_src = _setting(num_processes, ENV_NUM_PROCESSES, int, "num_processes")
    process_id, p_src = _setting(process_id, ENV_PROCESS_ID, int, "process_id")
    given = {"coordinator": coordinator, "num_processes": num_processes, "process_id": process_id}
    if all(v is None for v in given.values()):
        return False
    missing = [k for k, v in given.items() if v is None]
    if missing:
        have = ", ".join(f"{k}={v!r}" for k, v in given.items() if v is not None)
        raise ValueError(
            f"inconsistent process settings: {have} given but {', '.join(missing)} missing; a "
            "multi-process run needs all three (flags --coordinator, --num-processes, --process-id "
            f"or ${ENV_COORDINATOR}, ${ENV_NUM_PROCESSES}, ${ENV_PROCESS_ID})"
        )
    for name, value in (("num_processes", num_processes), ("process_id", process_id)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    num_processes, process_id = int(num_processes), int(process_id)
    if num_processes < 1:
        raise ValueError(f"num_processes must be >= 1, got {num_processes} (from {n_src})")
    if not 0 <= process_id < num_processes:
        raise ValueError(
            f"inconsistent process settings: process_id {process_id} (from {p_src}) is not in "
            f"0..{num_processes - 1} for num_processes={num_processes} (from {n_src})"
        )
    host, port = _split_address(coordinator)
    if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s > 0):
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")

    if jax.distributed.is_initialized():
        from jax._src.distributed import global_state as state  # no public accessor
        if (state.coordinator_address, state.num_processes, state.process_id) == (
                coordinator, num_processes, process_id):
            return True
        raise RuntimeError(
            f"jax.distributed is already initialised as process {state.process_id} of "
            f"{state.num_processes} with coordinator {state.coordinator_address}"
        )
    if _backends_started():
        raise RuntimeError(
            "initialize_distributed must be called before any other JAX call (an array was "
            "already created or the devices listed, which started a single-process backend)"
        )

    start = time.monotonic()
    if process_id == 0:
        _check_port_free(port)
    else:
        _wait_for_coordinator(host, port, timeout_s)
    left = max(1, math.ceil(timeout_s - (time.monotonic() - start)))
    if cpu_collectives is not None:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    if verbose:
        print(
            f"jaxnets: process {process_id} of {num_processes} joining coordinator {coordinator} "
            f"(timeout {left} s; if it is killed with DEADLINE_EXCEEDED, not all {num_processes} "
            "processes connected in time: check that every process has the same coordinator and "
            "num_processes and its own process_id)",
            file=sys.stderr, flush=True,
        )
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id,
        local_device_ids=local_device_ids, initialization_timeout=left,
    )
    # The process count comes from the coordinator: a process started with another
    # num_processes joins without complaint, so compare (this starts the backend).
    if (jax.process_count(), jax.process_index()) != (num_processes, process_id):
        raise ValueError(
            f"inconsistent process settings: this process was started as process {process_id} of "
            f"{num_processes}, but the coordinator at {coordinator} runs {jax.process_count()} "
            f"processes and counts this one as {jax.process_index()}; start every process with "
            "the same coordinator and num_processes"
        )
    return True


# ---------------------------------------------------------------------------------------------
# Mesh and data layout


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh with axis "data" over `devices` (default: every device of every process),
    ordered by process, then device id, so each process's devices form one block."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("data_mesh: no devices")
    devices = sorted(devices, key=lambda d: (d.process_index, d.id))
    return Mesh(np.array(devices), (DATA_AXIS,))


def _process_block(mesh, process_index):
    """(first, count): the mesh positions of `process_index`'s devices, one contiguous run."""
    owners = [d.process_index for d in mesh.devices.flat]
    positions = [i for i, p in enumerate(owners) if p == process_index]
    if not positions:
        raise ValueError(f"process {process_index} has no device in the mesh")
    first, count = positions[0], len(positions)
    if positions != list(range(first, first + count)):
        raise ValueError("the mesh must list each process's devices as one block (see data_mesh)")
    return first, count


def _check_mesh(mesh):
    if not isinstance(mesh, Mesh) or mesh.axis_names != (DATA_AXIS,):
        raise ValueError(f"mesh must be a jax.sharding.Mesh with the single axis {DATA_AXIS!r} (see data_mesh)")
    for p in range(jax.process_count()):
        _process_block(mesh, p)
    return mesh


def process_rows(n_rows, mesh=None, process_index=None) -> slice:
    """The rows of an n_rows array that a process holds (and should load) for `mesh`.

    Device k of the D-device mesh holds rows [k*r, (k+1)*r) with r = ceil(n_rows / D) (the
    last devices are padded when D does not divide n_rows — allowed for validation data;
    training rows must divide, see `train_data_parallel`), so a process holds the rows of its
    block of devices. process_index defaults to this process.
    """
    mesh = data_mesh() if mesh is None else mesh
    process_index = jax.process_index() if process_index is None else process_index
    n_rows = int(n_rows)
    first, count = _process_block(mesh, process_index)
    per_device = -(-n_rows // mesh.size)
    return slice(min(first * per_device, n_rows), min((first + count) * per_device, n_rows))


def local_shard(data, mesh=None):
    """This process's rows of full data (x_train, y_train[, x_val, y_val]), for a process that
    has read the whole data set (e.g. a small file on every host)."""
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 4):
        raise ValueError("data must be (x_train, y_train) or (x_train, y_train, x_val, y_val)")
    out = []
    for i in range(0, len(data), 2):
        x, y = data[i], data[i + 1]
        if x is None:
            out += [x, y]
            continue
        rows = process_rows(len(x), mesh)
        out += [x[rows], y[rows]]
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Global arrays


def _replicated(tree, mesh):
    """Host values -> arrays replicated on every device of the mesh (same value everywhere)."""
    sharding = NamedSharding(mesh, P())

    def put(a):
        host = np.asarray(a)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree)


def _sharded_rows(local, n_global, mesh, fill):
    """This process's rows -> a global (D*r, ...) array sharded along "data", r =
    ceil(n_global / D); rows past n_global (only when D does not divide it) are `fill`."""
    local = np.asarray(local)
    per_device = -(-n_global // mesh.size)
    _, count = _process_block(mesh, jax.process_index())
    want = count * per_device
    if local.shape[0] < want:
        pad = np.full((want - local.shape[0],) + local.shape[1:], fill, local.dtype)
        local = np.concatenate([local, pad])
    return jax.make_array_from_process_local_data(
        NamedSharding(mesh, P(DATA_AXIS)), local, (per_device * mesh.size,) + local.shape[1:]
    )


def _to_local(tree):
    """Replicated global arrays -> ordinary arrays on this process's default device."""
    return jax.tree.map(lambda a: jnp.asarray(np.asarray(a.addressable_data(0))), tree)


def _scalar(a):
    return np.asarray(a.addressable_data(0)).item()


# ---------------------------------------------------------------------------------------------
# The batch-sharded model and the sharded accuracy

_CACHE_SIZE = 32  # as train's chunk cache: entries hold the model, so keep it bounded
_SHARDED: dict = {}


def _remember(cache, key, model, value):
    if len(cache) >= _CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[key] = (model, value)
    return value


def _sharded_model(model, mesh):
    """`model` whose loss pins x and y to the "data" axis (the batch split); cached so that
    train._chunk_fn's compile cache (keyed by the model object) is reused across runs."""
    hit = _SHARDED.get((id(model), mesh))
    if hit is not None and hit[0] is model:
        return hit[1]
    batch = NamedSharding(mesh, P(DATA_AXIS))

    def pin(x, y):
        return (jax.lax.with_sharding_constraint(x, batch), jax.lax.with_sharding_constraint(y, batch))

    def loss(params, x, y, layers=AUTODIFF):
        return model.loss(params, *pin(x, y), layers=layers)

    def loss_and_grads(params, x, y):
        return model.loss_and_grads(params, *pin(x, y))

    return _remember(_SHARDED, (id(model), mesh), model,
                     model._replace(loss=loss, loss_and_grads=loss_and_grads))


_COUNTERS: dict = {}


def _correct_counter(model, mesh):
    """jit(shard_map): each device counts its rows with predict == y (padding rows carry the
    label -1, never predicted), then one psum over "data"."""
    hit = _COUNTERS.get((id(model), mesh))
    if hit is not None and hit[0] is model:
        return hit[1]

    def local_count(params, x, y):
        n = _count_correct_impl(model.predict, params, x, y, min(ACCURACY_BATCH, x.shape[0]))
        return jax.lax.psum(n, DATA_AXIS)

    fn = jax.jit(jax.shard_map(local_count, mesh=mesh, in_specs=(P(), P(DATA_AXIS), P(DATA_AXIS)),
                               out_specs=P()))
    return _remember(_COUNTERS, (id(model), mesh), model, fn)


# ---------------------------------------------------------------------------------------------
# Agreement between processes


def _digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return int.from_bytes(h.digest()[:4], "little") & 0x7FFFFFFF


def _global_sizes(mesh, model, config, params, n_train_local, n_val_local, feature_shape):
    """(n_train, n_val) over all processes, after checking that every process runs the same
    model, config and parameters and holds exactly its rows (process_rows)."""
    if jax.process_count() == 1:
        return n_train_local, n_val_local
    from jax.experimental import multihost_utils

    setup = _digest(model.name, ckpt.jsonable(model.config), config.to_dict(), list(feature_shape),
                    [str(d) for d in mesh.devices.flat])
    weights = _digest(*(k.encode() + np.ascontiguousarray(np.asarray(v)).tobytes()
                        for k, v in sorted(params.items())))
    mine = np.array([n_train_local, n_val_local, setup, weights], np.int32)
    try:
        table = np.asarray(multihost_utils.process_allgather(mine))
    except Exception as err:  # JaxRuntimeError from gloo/NCCL, e.g. a process that already quit
        raise RuntimeError(
            f"process {jax.process_index()} could not exchange its settings with the other "
            f"{jax.process_count() - 1} process(es); did one of them fail (see its log)? {err}"
        ) from err
    for p, row in enumerate(table):
        if row[2] != table[0][2]:
            raise ValueError(
                f"process {p} runs a different model, training config, feature shape or mesh "
                "than process 0; every process must be started with the same settings"
            )
        if row[3] != table[0][3]:
            raise ValueError(
                f"process {p} starts from different parameters than process 0; initialise them "
                "from the same key on every process"
            )
    n_train, n_val = int(table[:, 0].sum()), int(table[:, 1].sum())
    for p, row in enumerate(table):
        for what, n_global, n_local in (("training", n_train, row[0]), ("validation", n_val, row[1])):
            rows = process_rows(n_global, mesh, p)
            if rows.stop - rows.start != n_local:
                raise ValueError(
                    f"process {p} holds {n_local} {what} rows, but its shard of the {n_global} "
                    f"global rows is rows {rows.start}:{rows.stop}; load "
                    "x[jaxnets.parallel.process_rows(n)] on each process (or use local_shard)"
                )
    return n_train, n_val


# ---------------------------------------------------------------------------------------------
# Training


def train_data_parallel(model, params, data, config: TrainConfig, *, mesh=None, progress=True,
                        checkpoint_path=None) -> TrainResult:
    """Train like `jaxnets.train.train`, data-parallel over the devices of `mesh`.

    data: THIS process's rows, (x_train, y_train[, x_val, y_val]) — in a single process the
        whole set; with several processes, rows `process_rows(n)` of each global array
        (`local_shard(full_data)` cuts them). Checked like train(), bad input -> ValueError.
    params: initial parameters, identical on every process (checked).
    mesh: a 1-D mesh with axis "data" (default `data_mesh()`: all devices of all processes).
    progress: status line on stderr (process 0 only).
    checkpoint_path: if given, process 0 writes the final checkpoint there
        (`jaxnets.checkpoint`; resuming a data-parallel run is not supported).

    The global batch (batch_size, or all N rows for full-batch training) and the N training
    rows must divide evenly across the D devices: ValueError otherwise. Every process must
    call this with the same model, config and params. Returns a `TrainResult` with the same
    history as train() and params / opt_state as ordinary arrays on this process's default
    device (identical on every process). Divergence is handled as in train().
    """
    start_time = time.perf_counter()
    _check_config(config)
    if config.mode == "fast":
        raise ValueError("mode 'fast' (jaxnets.fused) is for one device; data-parallel training "
                         "takes manual, autodiff or custom_vjp")
    mesh = data_mesh() if mesh is None else _check_mesh(mesh)
    devices = mesh.size
    dtype = jnp.dtype(config.dtype)

    if not isinstance(data, (tuple, list)) or len(data) not in (2, 4):
        raise ValueError("data must be (x_train, y_train) or (x_train, y_train, x_val, y_val)")
    has_val = len(data) == 4 and data[2] is not None
    local_val_rows = len(data[2]) if has_val and hasattr(data[2], "__len__") else 0
    checked = data if local_val_rows else tuple(data[:2])
    params = _fresh_params(params, dtype)
    x_tr, y_tr, x_val, y_val = _prepare_data(model, params, checked, dtype)
    feature_shape = tuple(x_tr.shape[1:])
    if has_val and x_val is None:  # this process holds no validation rows, others may
        x_val = np.zeros((0,) + feature_shape, dtype)
        y_val = np.zeros((0,), np.asarray(y_tr).dtype)
    n_train, n_val = _global_sizes(mesh, model, config, params, int(x_tr.shape[0]),
                                   int(x_val.shape[0]) if has_val else 0, feature_shape)
    if has_val and n_val == 0:
        raise ValueError("validation x has no rows")

    if config.batch_size is None and n_train % devices:
        raise ValueError(
            f"the global batch (full batch: all {n_train} training rows) does not divide across "
            f"{devices} devices; use a device count that divides {n_train}"
        )
    if config.batch_size is not None and config.batch_size % devices:
        raise ValueError(
            f"the global batch_size {config.batch_size} does not divide across {devices} devices "
            f"({config.batch_size / devices:g} rows each); use a multiple of {devices}"
        )
    if n_train % devices:
        raise ValueError(
            f"the {n_train} training rows do not divide across {devices} devices (each holds an "
            f"equal block of rows); drop {n_train % devices} rows or use another device count"
        )

    x_g = _sharded_rows(x_tr, n_train, mesh, 0)
    y_g = _sharded_rows(y_tr, n_train, mesh, 0)
    if has_val:
        xv_g = _sharded_rows(x_val, n_val, mesh, 0)
        yv_g = _sharded_rows(y_val, n_val, mesh, -1)

    optimizer = make_optimizer(config, n_train)
    ipe = iterations_per_epoch(n_train, config.batch_size)
    schedule = learning_rate_schedule(config.learning_rate, config.decay, ipe)
    report_every = config.report_every or (ipe if config.batch_size else FULL_BATCH_REPORT_EVERY)
    chunk = min(report_every, MAX_CHUNK)
    total = config.iterations

    host_params = {k: np.asarray(v) for k, v in params.items()}
    host_opt = jax.tree.map(np.asarray, optimizer.init(params))
    state = _State(*_replicated(
        (host_params, host_opt, host_params, host_opt, np.int32(0), np.int32(RUNNING)), mesh))
    key = jax.random.key(config.seed)  # typed keys cannot be device_put across processes:
    key = jax.random.wrap_key_data(_replicated(jax.random.key_data(key), mesh), impl=jax.random.key_impl(key))
    run_chunk = _chunk_fn(_sharded_model(model, mesh), config, n_train, chunk) if total else None
    count_correct = _correct_counter(model, mesh)

    history = {"loss": [], "report_step": [], "train_acc": [], "val_acc": [], "lr": []}
    bar = _Progress(total, progress and jax.process_index() == 0)

    report = _reporter(history, schedule, bar, total,
                       lambda p: _scalar(count_correct(p, x_g, y_g)) / n_train,
                       (lambda p: _scalar(count_correct(p, xv_g, yv_g)) / n_val) if has_val else None)

    report(0, state.params)
    state, step, status, bad_loss = _run_chunks(
        run_chunk, state, (x_g, y_g, key), 0, total, report_every, chunk, history, report, bar)

    params, opt_state = state.params, state.opt_state
    diverged = None
    if status != RUNNING:  # the same rollback and message as train()
        params, opt_state, step, diverged = _roll_back(state, status, step, 0, bad_loss, history, config)
        if not history["report_step"] or history["report_step"][-1] != step:
            report(step, params)
    bar.close()
    if diverged and jax.process_index() == 0:
        print(diverged, file=sys.stderr, flush=True)
    params, opt_state = _to_local(params), _to_local(opt_state)
    if checkpoint_path is not None and jax.process_index() == 0:
        ckpt.save_checkpoint(
            checkpoint_path, params=params, opt_state=opt_state, step=step, model_name=model.name,
            model_config=model.config, train_config=config.to_dict(), history=history,
            extra={"n_train": n_train, "diverged": diverged, "devices": devices,
                   "processes": jax.process_count()},
        )
    return TrainResult(params, history, step, diverged, time.perf_counter() - start_time, opt_state)
