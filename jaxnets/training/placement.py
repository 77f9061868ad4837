"""Where training's arrays live: the only thing that differs between one device and many.

`train()` asks its placement to put the training rows, the state and the key on devices, to
count correct predictions, and to bring the final parameters back; everything else (the steps,
the host loop, reports, rollback, checkpoints) is the same code.

- `SingleDevice`: every array on the default device.
- `DataParallel(mesh)`: data-parallel over a 1-D "data" mesh (`distributed.data_mesh`). The N
  training rows are sharded along "data" (device k holds rows [k*N/D, (k+1)*N/D)), parameters
  and optimiser state are replicated, and every step pins its batch to the "data" axis
  (`batch_sharding`, with `with_sharding_constraint`). Every step draws its minibatch exactly as on one device
  (over the global row numbers), so D devices see the same global batches as one. The loss is
  the mean over the GLOBAL batch: under `jit` the arrays are global, so the model's 1/N and
  the manual backward's batch sums (`x.T @ dout`, `sum(dout, axis=0)`) are partitioned by XLA
  into per-device partial sums plus an all-reduce; nothing divides by a per-device count.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxnets.training.accuracy import ACCURACY_BATCH, count_correct
from jaxnets.training.checkpoint import jsonable
from jaxnets.training.distributed import DATA_AXIS, check_mesh, process_block, process_rows
from jaxnets.training.steps import initial_state


class SingleDevice:
    """Everything on the default device."""

    writer = True  # this process writes progress, checkpoints and files
    devices = 1
    batch_sharding = None  # where each step's batch lives: nothing to pin

    def global_sizes(self, model, config, params, n_train, n_val, feature_shape):
        return n_train, n_val

    def check_divisible(self, config, n_train):
        pass

    def rows(self, x, y, n_global, fill):
        return jnp.asarray(x), jnp.asarray(y)

    def state(self, params, opt_state, model_state, step):
        return initial_state(params, opt_state, model_state, step)

    def key(self, seed):
        return jax.random.key(seed)

    def counter(self, model, decode=None):
        """Traceable `(params, model_state, x, y) -> number of rows predicted right` (int32);
        x as stored, decoded by `decode` (None: as given)."""
        return Counter(model, decode)

    def local(self, tree):
        return tree


@dataclasses.dataclass(frozen=True)
class Counter:
    """`(params, model_state, x, y) -> int32 number of rows with predict == y`, traceable; x as
    stored, decoded by `decode` (None: as given). With a mesh, a shard_map: each device counts
    its rows (padding rows carry the label -1, never predicted), then one psum over "data".
    A hashable value, so compiled programs that count are cached by it."""

    model: Any
    decode: Any = None
    mesh: Any = None

    def __call__(self, params, model_state, x, y):
        predict = self.model.predict
        if self.decode is not None:
            predict = lambda params, x, state=None, p=predict: p(params, self.decode(x), state)  # noqa: E731

        def count(params, model_state, x, y):
            return count_correct(predict, params, model_state, x, y, min(ACCURACY_BATCH, x.shape[0]))

        if self.mesh is None:
            return count(params, model_state, x, y)

        def local_count(params, model_state, x, y):
            return jax.lax.psum(count(params, model_state, x, y), DATA_AXIS)

        return jax.shard_map(local_count, mesh=self.mesh, in_specs=(P(), P(), P(DATA_AXIS), P(DATA_AXIS)),
                             out_specs=P())(params, model_state, x, y)


class DataParallel:
    """Rows sharded along the mesh's "data" axis, everything else replicated."""

    def __init__(self, mesh):
        self.mesh = check_mesh(mesh)
        self.devices = mesh.size
        self.writer = jax.process_index() == 0
        # Batch norm's statistics are means over the pinned (global) batch: XLA all-reduces
        # them, so D devices normalise exactly as one device does.
        self.batch_sharding = NamedSharding(self.mesh, P(DATA_AXIS))

    def global_sizes(self, model, config, params, n_train, n_val, feature_shape):
        """(n_train, n_val) over all processes, after checking that every process runs the
        same model, config and parameters and holds exactly its rows (process_rows)."""
        if jax.process_count() == 1:
            return n_train, n_val
        return _exchange_sizes(self.mesh, model, config, params, n_train, n_val, feature_shape)

    def check_divisible(self, config, n_train):
        devices = self.devices
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

    def rows(self, x, y, n_global, fill):
        """This process's rows -> global (D*r, ...) arrays sharded along "data", r =
        ceil(n_global / D); rows past n_global (only when D does not divide it, which only
        validation data may do) hold zeros and the label `fill`."""
        return self._sharded(x, n_global, 0), self._sharded(y, n_global, fill)

    def _sharded(self, local, n_global, fill):
        mesh = self.mesh
        local = np.asarray(local)
        per_device = -(-n_global // mesh.size)
        _, count = process_block(mesh, jax.process_index())
        want = count * per_device
        if local.shape[0] < want:
            pad = np.full((want - local.shape[0],) + local.shape[1:], fill, local.dtype)
            local = np.concatenate([local, pad])
        return jax.make_array_from_process_local_data(
            NamedSharding(mesh, P(DATA_AXIS)), local, (per_device * mesh.size,) + local.shape[1:]
        )

    def replicate(self, tree):
        """Host values -> arrays replicated on every device of the mesh (same value everywhere)."""
        sharding = NamedSharding(self.mesh, P())

        def put(a):
            host = np.asarray(a)
            return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

        return jax.tree.map(put, tree)

    def state(self, params, opt_state, model_state, step):
        return initial_state(params, opt_state, model_state, step, put=self.replicate)

    def key(self, seed):
        key = jax.random.key(seed)  # typed keys cannot be device_put across processes:
        return jax.random.wrap_key_data(self.replicate(jax.random.key_data(key)), impl=jax.random.key_impl(key))

    def counter(self, model, decode=None):
        """Traceable shard_map: each device counts its rows with predict == y, then one psum
        over "data" (`Counter`)."""
        return Counter(model, decode, self.mesh)

    def local(self, tree):
        """Replicated global arrays -> ordinary arrays on this process's default device."""
        return jax.tree.map(lambda a: jnp.asarray(np.asarray(a.addressable_data(0))), tree)


def _digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return int.from_bytes(h.digest()[:4], "little") & 0x7FFFFFFF


def _exchange_sizes(mesh, model, config, params, n_train_local, n_val_local, feature_shape):
    from jax.experimental import multihost_utils

    setup = _digest(model.name, jsonable(model.config), config.to_dict(), list(feature_shape),
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
                    "x[jaxnets.training.process_rows(n)] on each process (or use local_shard)"
                )
    return n_train, n_val
