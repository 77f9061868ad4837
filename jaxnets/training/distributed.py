"""Processes and the data mesh for data-parallel training (jax.distributed, jax.sharding).

Several hosts: every process calls `initialize_distributed` (before any other JAX call), then
trains with its own rows (`process_rows`, `local_shard`). On CPU the cross-process collectives
are gloo's (JAX's default CPU collectives, set explicitly by `initialize_distributed`).

The mesh is 1-D with the single axis `"data"`: device k of the D-device mesh holds rows
[k*r, (k+1)*r) of the N rows (r = ceil(N / D)), so a process holds, and loads, only the rows
of its own block of devices.
"""
from __future__ import annotations

import math
import os
import socket
import sys
import time

import jax
import numpy as np
from jax.sharding import Mesh

DATA_AXIS = "data"
ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"  # JAX's own name (jax.distributed reads it too)
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"  # jaxnets' names: JAX takes these two only as
ENV_PROCESS_ID = "JAX_PROCESS_ID"  # arguments or from Slurm/MPI/TPU/k8s auto-detection
DEFAULT_TIMEOUT_S = 60.0  # seconds to reach the coordinator and all other processes

__all__ = [
    "DATA_AXIS", "ENV_COORDINATOR", "ENV_NUM_PROCESSES", "ENV_PROCESS_ID", "DEFAULT_TIMEOUT_S",
    "CoordinatorUnreachableError", "initialize_distributed", "data_mesh", "check_mesh",
    "process_block", "process_rows", "local_shard",
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


def process_block(mesh, process_index):
    """(first, count): the mesh positions of `process_index`'s devices, one contiguous run."""
    owners = [d.process_index for d in mesh.devices.flat]
    positions = [i for i, p in enumerate(owners) if p == process_index]
    if not positions:
        raise ValueError(f"process {process_index} has no device in the mesh")
    first, count = positions[0], len(positions)
    if positions != list(range(first, first + count)):
        raise ValueError("the mesh must list each process's devices as one block (see data_mesh)")
    return first, count


def check_mesh(mesh):
    """`mesh` itself, after checking it is a "data" mesh with each process's devices in one block."""
    if not isinstance(mesh, Mesh) or mesh.axis_names != (DATA_AXIS,):
        raise ValueError(f"mesh must be a jax.sharding.Mesh with the single axis {DATA_AXIS!r} (see data_mesh)")
    for p in range(jax.process_count()):
        process_block(mesh, p)
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
    first, count = process_block(mesh, process_index)
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
