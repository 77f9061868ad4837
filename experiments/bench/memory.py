"""Memory while training many different models in one process: the resident set size after
each of N different small models (TwoLayerNet 20-h-4, h = 5, 6, ...; 30 SGD steps of 32 rows
each, with reports) is trained by `train()`. Compiled programs are cached per model in a
bounded cache (`jaxnets.programs`), so the size levels off instead of growing with every model.

    uv run python -m experiments.bench.memory [N]      # default 20; Linux (/proc/self/status)
"""
import gc
import sys
import time

import jax
import numpy as np

from jaxnets.models import MODELS
from jaxnets.training import TrainConfig, train


def rss_mb():
    """This process's resident set size in MB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    n_models = int(argv[0]) if argv else 20
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 20)).astype(np.float32)
    y = rng.integers(0, 4, 256).astype(np.int32)
    config = TrainConfig(learning_rate=0.1, iterations=30, batch_size=32, mode="manual")
    sizes, start = [], time.time()
    for i in range(n_models):
        model = MODELS["two_layer"](input_size=20, hidden_size=5 + i, num_classes=4, std=0.1)
        params = jax.jit(model.init)(jax.random.key(i))  # compiled for this model only: dropped with it
        train(model, params, (x, y, x[:64], y[:64]), config, progress=False)
        del model, params
        gc.collect()
        sizes.append(rss_mb())
        print(f"model {i + 1:2d}: RSS {sizes[-1]:.1f} MB", flush=True)
    half = sizes[n_models // 2 - 1] if n_models > 1 else sizes[0]
    print(f"first {sizes[0]:.1f} MB, after {n_models}: {sizes[-1]:.1f} MB; "
          f"growth over the last half: {sizes[-1] - half:.1f} MB; {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
