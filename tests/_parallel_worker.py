"""Subprocess side of tests/test_parallel.py (not a test module: pytest collects test_*.py).

Each command runs in a fresh interpreter, so XLA_FLAGS (the number of CPU devices) and
jax.distributed take effect, and x64 is off (float32 training, as in real runs):

  devices OUT             4-device runs of train_data_parallel vs one-device train.train and a
                          one-device mesh, MLP and ConvNet, manual/autodiff/custom_vjp; the HLO
                          of a sharded gradient step; the divisibility errors -> OUT (JSON)
  reference DATA OUT      single-process train.train of the TwoLayerNet on DATA -> OUT (npz)
  worker DATA OUT [--coordinator A --num-processes N --process-id P] [--bad-lr]
                          one process of a jax.distributed run (settings from the flags or
                          the JAX_* environment) that loads only its rows of DATA -> OUT
                          (npz), or OUT.json holding a ValueError's message (exit code 3)
  connect ADDR ID N TIMEOUT   initialize_distributed only, to probe the error paths
"""
import json
import re
import sys
import time

import numpy as np

# The TwoLayerNet run shared by the reference and the distributed workers.
TWO_LAYER = {"input_size": 12, "hidden_size": 16, "num_classes": 4, "std": 0.1}
TWO_LAYER_TRAIN = {"learning_rate": 0.3, "decay": 0.9, "iterations": 50, "batch_size": 16,
                   "report_every": 10, "seed": 3}
N_TRAIN, N_VAL = 120, 30  # 30 validation rows over 4 devices: the last device is padded


def make_data(n, shape, classes, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n,) + tuple(shape)).astype(np.float32)
    w = rng.standard_normal((int(np.prod(shape)), classes))
    y = np.argmax(x.reshape(n, -1) @ w, axis=1).astype(np.int32)
    return x, y


def make_tokens(n, vocab, steps, seed):
    """Token inputs (n, steps) counting up from a random start (mod vocab) and their
    learnable next tokens as targets, a random padded tail (-1) per row."""
    rng = np.random.default_rng(seed)
    x = ((rng.integers(0, vocab, n)[:, None] + np.arange(steps)[None]) % vocab).astype(np.int32)
    y = (x + 1) % vocab
    return x, np.where(np.arange(steps)[None] < rng.integers(2, steps + 1, n)[:, None], y, -1).astype(np.int32)


def write_dataset(folder):
    """The TwoLayerNet data as .npy files, so each worker can memory-map and read its rows."""
    x, y = make_data(N_TRAIN + N_VAL, (TWO_LAYER["input_size"],), TWO_LAYER["num_classes"], 7)
    for name, arr in (("x_train", x[:N_TRAIN]), ("y_train", y[:N_TRAIN]),
                      ("x_val", x[N_TRAIN:]), ("y_val", y[N_TRAIN:])):
        np.save(f"{folder}/{name}.npy", arr)


def load_dataset(folder, rows=None):
    """(x_train, y_train, x_val, y_val); `rows(n)` -> slice reads only those rows of each."""
    out = []
    for name in ("x_train", "y_train", "x_val", "y_val"):
        arr = np.load(f"{folder}/{name}.npy", mmap_mode="r")
        out.append(np.array(arr[rows(len(arr))] if rows else arr))
    return tuple(out)


def max_abs_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64)))) for k in a)


def two_layer_setup():
    import jax

    from jaxnets.models import two_layer_net
    from jaxnets.training import TrainConfig

    model = two_layer_net(**TWO_LAYER)
    params = {k: np.asarray(v, np.float32) for k, v in model.init(jax.random.key(0)).items()}
    return model, params, TrainConfig(mode="manual", dtype="float32", **TWO_LAYER_TRAIN)


def cmd_devices(out_path):
    import jax

    from jaxnets import training as parallel
    from jaxnets.grads import value_and_grad
    from jaxnets.models import char_lm, conv_net, fc_net, two_layer_net
    from jaxnets.training import TrainConfig, train
    from jaxnets.training.placement import DataParallel

    assert jax.device_count() == 4, jax.devices()
    mesh4 = parallel.data_mesh()
    mesh1 = parallel.data_mesh(jax.devices()[:1])
    report = {"runs": [], "errors": {}}
    models = {
        "mlp": (two_layer_net(input_size=20, hidden_size=16, num_classes=3, std=0.1), (20,)),
        "conv": (conv_net(input_shape=(1, 8, 8), num_filters=4, num_classes=3), (1, 8, 8)),
        # batch norm over the global batch, dropout masks over the global batch
        "fc_bn": (fc_net((16,), input_size=20, num_classes=3, norm="batchnorm", dropout=0.3, weight_scale=0.1),
                  (20,)),
        # integer tokens, a target per step (-1: none), a scan inside the shard_map'd counts
        "lm": (char_lm(vocab_size=5, seq_len=6, embed=3, hidden=4), None),
    }
    # (model, mode, batch_size): full batch and with-replacement minibatches both covered
    cases = [("mlp", "manual", 16), ("mlp", "autodiff", None), ("mlp", "custom_vjp", 16),
             ("conv", "manual", None), ("conv", "autodiff", 16), ("fc_bn", "manual", 16),
             ("fc_bn", "custom_vjp", None), ("lm", "manual", 16)]
    for name, mode, batch_size in cases:
        model, shape = models[name]
        x, y = make_data(96, shape, 3, 1) if shape else make_tokens(96, 5, 6, 1)
        x_val, y_val = make_data(30, shape, 3, 2) if shape else make_tokens(30, 5, 6, 2)
        params = {k: np.asarray(v, np.float32) for k, v in model.init(jax.random.key(1)).items()}
        config = TrainConfig(mode=mode, learning_rate=0.3, decay=0.95, iterations=50,
                             batch_size=batch_size, report_every=20, dtype="float32")
        data = (x, y, x_val, y_val)
        t0 = time.perf_counter()
        single = train(model, params, data, config, progress=False)
        t1 = time.perf_counter()
        four = parallel.train_data_parallel(model, params, data, config, mesh=mesh4, progress=False)
        t2 = time.perf_counter()
        # the one-device mesh (also tested in-process) only for the cheap MLP runs
        one = (parallel.train_data_parallel(model, params, data, config, mesh=mesh1, progress=False)
               if name == "mlp" else None)
        report["runs"].append({
            "model": name, "mode": mode, "batch_size": batch_size, "steps": four.steps_done,
            "dtype": str(np.asarray(next(iter(four.params.values()))).dtype),
            "max_diff_4dev_vs_train": max(max_abs_diff(four.params, single.params),
                                          max_abs_diff(four.model_state, single.model_state) if single.model_state else 0.0),
            "max_diff_1dev_mesh_vs_train": max_abs_diff(one.params, single.params) if one else None,
            "max_loss_diff": float(np.max(np.abs(np.subtract(four.history["loss"], single.history["loss"])))),
            "same_reports": (four.history["report_step"], four.history["train_acc"], four.history["val_acc"],
                             four.history["lr"]) == (single.history["report_step"], single.history["train_acc"],
                                                     single.history["val_acc"], single.history["lr"]),
            "loss_first_last": [single.history["loss"][0], single.history["loss"][-1]],
            "seconds_train_vs_4dev": [round(t1 - t0, 2), round(t2 - t1, 2)],
        })

    # The compiled gradient step: each device works on 8/4 rows, an all-reduce sums.
    model, _ = models["mlp"]
    host_params = {k: np.asarray(v, np.float32) for k, v in model.init(jax.random.key(1)).items()}
    place = DataParallel(mesh4)
    params = place.replicate(host_params)
    x, y = make_data(8, (20,), 3, 3)  # 8 rows: a size the MLP (20-16-3) has nowhere else
    hlo = {}
    for mode in ("manual", "autodiff"):
        def pinned(params, x, y, vg=value_and_grad(model, mode)):  # the batch split, as every training step pins it
            return vg(params, *(jax.lax.with_sharding_constraint(a, place.batch_sharding) for a in (x, y)))

        step = jax.jit(pinned)
        text = step.lower(params, *place.rows(x, y, 8, 0)).compile().as_text()
        hlo[mode] = {"all_reduce": len(re.findall(r"\ball-reduce(?:-start)?\(", text)),
                     "dot_shapes": sorted(set(re.findall(r"= (f32\[[0-9,]*\])\S* dot\(", text)))}
    report["hlo"] = hlo

    # A data-parallel run interrupted at step 15 (checkpoints every 5) and resumed to 30 ends
    # where an uninterrupted data-parallel run ends.
    model, shape = models["mlp"]
    x, y = make_data(96, shape, 3, 1)
    params = {k: np.asarray(v, np.float32) for k, v in model.init(jax.random.key(1)).items()}
    config = TrainConfig(learning_rate=0.3, iterations=30, batch_size=16, report_every=10, dtype="float32")
    stem = out_path + ".checkpoint"
    whole = parallel.train_data_parallel(model, params, (x, y), config, mesh=mesh4, progress=False)
    parallel.train_data_parallel(model, params, (x, y), config.replace(iterations=15), mesh=mesh4,
                                 progress=False, checkpoint_path=stem, checkpoint_every=5)
    resumed = parallel.train_data_parallel(model, None, (x, y), config, mesh=mesh4, progress=False, resume=stem)
    report["resume"] = {"steps": resumed.steps_done, "max_diff": max_abs_diff(resumed.params, whole.params),
                        "max_loss_diff": float(np.max(np.abs(np.subtract(resumed.history["loss"],
                                                                         whole.history["loss"])))),
                        "report_steps": resumed.history["report_step"]}

    params = model.init(jax.random.key(1))
    for label, data, config in [
        ("batch", (x, y), TrainConfig(learning_rate=0.1, iterations=2, batch_size=10)),
        ("full_batch", (x[:94], y[:94]), TrainConfig(learning_rate=0.1, iterations=2)),
        ("rows", (x[:94], y[:94]), TrainConfig(learning_rate=0.1, iterations=2, batch_size=8)),
    ]:
        try:
            parallel.train_data_parallel(model, params, data, config, mesh=mesh4, progress=False)
            report["errors"][label] = None
        except ValueError as err:
            report["errors"][label] = str(err)
    with open(out_path, "w") as f:
        json.dump(report, f, indent=1)


def cmd_reference(data_dir, out_path):
    from jaxnets.training import train

    model, params, config = two_layer_setup()
    result = train(model, params, load_dataset(data_dir), config, progress=False)
    np.savez(out_path, **{k: np.asarray(v) for k, v in result.params.items()},
             loss=np.asarray(result.history["loss"]), val_acc=np.asarray(result.history["val_acc"]))


def cmd_worker(data_dir, out_path, flags):
    from jaxnets import training as parallel

    settings = {"coordinator": None, "num_processes": None, "process_id": None}
    bad_lr = "--bad-lr" in flags
    flags = [f for f in flags if f != "--bad-lr"]
    for flag, value in zip(flags[::2], flags[1::2]):
        key = flag.lstrip("-").replace("-", "_")
        settings[key] = value if key == "coordinator" else int(value)
    try:
        assert parallel.initialize_distributed(**settings, timeout_s=30)
        model, params, config = two_layer_setup()
        if bad_lr:
            config = config.replace(learning_rate=0.5)
        data = load_dataset(data_dir, rows=lambda n: parallel.process_rows(n))
        result = parallel.train_data_parallel(model, params, data, config, progress=False)
    except ValueError as err:
        with open(out_path + ".json", "w") as f:
            json.dump({"error": str(err)}, f)
        raise SystemExit(3) from None

    import jax
    np.savez(out_path, **{k: np.asarray(v) for k, v in result.params.items()},
             loss=np.asarray(result.history["loss"]), val_acc=np.asarray(result.history["val_acc"]),
             process_index=jax.process_index(), process_count=jax.process_count(),
             device_count=jax.device_count(), local_device_count=jax.local_device_count(),
             cpu_collectives=str(jax.config.jax_cpu_collectives_implementation),
             local_rows=np.array([len(data[0]), len(data[2])]), steps=result.steps_done)
    jax.distributed.shutdown()


def cmd_connect(address, process_id, num_processes, timeout_s):
    from jaxnets import training as parallel

    t0 = time.perf_counter()
    try:
        parallel.initialize_distributed(address, int(num_processes), int(process_id), timeout_s=float(timeout_s))
        print(json.dumps({"error": None}))
    except Exception as err:  # noqa: BLE001 - reported to the test
        print(json.dumps({"error": f"{type(err).__name__}: {err}", "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "devices":
        cmd_devices(*args)
    elif command == "reference":
        cmd_reference(*args)
    elif command == "worker":
        cmd_worker(args[0], args[1], args[2:])
    elif command == "connect":
        cmd_connect(*args)
    else:
        raise SystemExit(f"unknown command {command!r}")
