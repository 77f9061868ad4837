"""Where training's arrays live: the only thing that differs between one device and many.

`train()` asks its placement to put the training rows, the state and the key on devices, to
count correct predictions, and to bring the final parameters back; everything else (the steps,
the host loop, reports, rollback, checkpoints) is the same code.

- `SingleDevice`: every array on the default device.
- `DataParallel(mesh)`: data-parallel over a 1-D "data" mesh (`distributed.data_mesh`). The N
  training rows are sharded along "data" (device k holds rows [k*N/D, (k+1)*N/D)), parameters
  and optimiser state are replicated, and the model's loss pins each batch to the "data" axis
  with `with_sharding_constraint`. Every step draws its minibatch exactly as on one device
  (over the global row numbers), so D devices see the same global batches as one. The loss is
  the mean over the GLOBAL batch: under `jit` the arrays are global, so the model's 1/N and
  the manual backward's batch sums (`x.T @ dout`, `sum(dout, axis=0)`) are partitioned by XLA
  into per-device partial sums plus an all-reduce; nothing divides by a per-device count.
"""
from __future__ import annotations

import hashlib
import json

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxnets.ops import AUTODIFF
from jaxnets.training.accuracy import ACCURACY_BATCH, count_correct
from jaxnets.training.checkpoint import jsonable
from jaxnets.training.distributed import DATA_AXIS, check_mesh, process_block, process_rows
from jaxnets.training.steps import initial_state


class SingleDevice:
    """Everything on the default device."""

    writer = True  # this process writes progress, checkpoints and files
    devices = 1

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

    def model(self, model):
        return model

    def counter(self, model, decode=None):
        """Traceable `(params, model_state, x, y) -> number of rows predicted right` (int32);
        x as stored, decoded by `decode` (None: as given)."""
        return _single_counter(model, decode)

    def local(self, tree):
        return tree


_CACHE_SIZE = 32  # entries hold the model: keep the caches bounded
_SHARDED: dict = {}
_COUNTERS: dict = {}


def _remember(cache, key, model, value):
    if len(cache) >= _CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[key] = (model, value)
    return value


def _cached(cache, model, mesh):
    hit = cache.get((id(model), mesh))
    return hit[1] if hit is not None and hit[0] is model else None


def _decoding(predict, decode):
    """predict on stored inputs: decode each batch first."""
    if decode is None:
        return predict
    return lambda params, x, state=None: predict(params, decode(x), state)


def _single_counter(model, decode):
    hit = _cached(_COUNTERS, model, (None, decode))
    if hit is None:
        predict = _decoding(model.predict, decode)

        def count(params, model_state, x, y):
            return count_correct(predict, params, model_state, x, y, min(ACCURACY_BATCH, x.shape[0]))

        hit = _remember(_COUNTERS, (id(model), (None, decode)), model, count)
    return hit


class DataParallel:
    """Rows sharded along the mesh's "data" axis, everything else replicated."""

    def __init__(self, mesh):
        self.mesh = check_mesh(mesh)
        self.devices = mesh.size
        self.writer = jax.process_index() == 0

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

    def model(self, model):
        """`model` whose loss pins x and y to the "data" axis (the batch split); cached so that
        the training chunk's compile cache (keyed by the model object) is reused across runs."""
        hit = _cached(_SHARDED, model, self.mesh)
        if hit is not None:
            return hit
        batch = NamedSharding(self.mesh, P(DATA_AXIS))

        def pin(x, y):
            return (jax.lax.with_sharding_constraint(x, batch), jax.lax.with_sharding_constraint(y, batch))

        # Batch norm's statistics are means over the pinned (global) batch: XLA all-reduces them,
        # so D devices normalise exactly as one device does.
        def loss(params, x, y, layers=AUTODIFF, **kw):
            return model.loss(params, *pin(x, y), layers=layers, **kw)

        def loss_and_grads(params, x, y, **kw):
            return model.loss_and_grads(params, *pin(x, y), **kw)

        # No fast gradient: its layouts are written for one device (see train()).
        sharded = model._replace(loss=loss, loss_and_grads=loss_and_grads, fast_gradient=None)
        return _remember(_SHARDED, (id(model), self.mesh), model, sharded)

    def counter(self, model, decode=None):
        """Traceable shard_map: each device counts its rows with predict == y (padding rows carry
        the label -1, never predicted), then one psum over "data"."""
        fn = _cached(_COUNTERS, model, (self.mesh, decode))
        if fn is None:
            predict = _decoding(model.predict, decode)

            def local_count(params, model_state, x, y):
                n = count_correct(predict, params, model_state, x, y, min(ACCURACY_BATCH, x.shape[0]))
                return jax.lax.psum(n, DATA_AXIS)

            fn = jax.shard_map(local_count, mesh=self.mesh, in_specs=(P(), P(), P(DATA_AXIS), P(DATA_AXIS)),
                               out_specs=P())
            _remember(_COUNTERS, (id(model), (self.mesh, decode)), model, fn)
        return fn

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
