"""cs231n's batch-normalisation experiment: a 5-layer fully connected net trained without
normalisation, with batch norm and with layer norm, across weight initialisation scales.

    jaxnets train normalization [--data SPEC] [--scales 9] [--epochs 10] [...]

784 - 100 - 100 - 100 - 100 - 10, ReLU, weights `scale * randn` for each scale of
logspace(-4, 0), trained on the first 1000 training images (as cs231n's notebook does on
1000 CIFAR images) with Adam (lr 1e-3, batches of 50 drawn with replacement) for --epochs
epochs; the same initial draws for every norm. Writes one run folder `normalization` with
metrics.json (per norm and scale: final training loss, train / validation accuracy) and two
plots: the final training loss against the scale, and the final accuracies against the scale.
The course's claim to test: batch norm makes training far less sensitive to the scale.
"""
import time

import jax
import numpy as np

from experiments import image_data, options, plots, runs
from jaxnets.models import fc_net
from jaxnets.training import TrainConfig, train

NORMS = {"none": None, "batchnorm": "batchnorm", "layernorm": "layernorm"}
HIDDEN = (100, 100, 100, 100)
N_TRAIN = 1000
BATCH = 50


def sweep(prepared, scales, epochs, seed=0, log=print):
    """{norm: [per-scale result dicts]} for every norm and weight scale."""
    x, y = prepared.x_train[:N_TRAIN], prepared.y_train[:N_TRAIN]
    data = (x, y, prepared.x_val, prepared.y_val)
    config = TrainConfig(learning_rate=1e-3, iterations=epochs * len(x) // BATCH, batch_size=BATCH,
                         optimizer="adam", seed=seed)
    out = {}
    for label, norm in NORMS.items():
        out[label] = []
        for scale in scales:
            model = fc_net(HIDDEN, input_size=x.shape[1], norm=norm, weight_scale=float(scale))
            result = train(model, model.init(jax.random.key(seed)), data, config, progress=False)
            h = result.history
            loss = h["loss"][-1] if h["loss"] else float("nan")
            out[label].append({"scale": float(scale), "final_loss": float(np.mean(h["loss"][-(len(x) // BATCH):])),
                               "last_loss": loss, "train_acc": h["train_acc"][-1], "val_acc": h["val_acc"][-1],
                               "diverged": result.diverged, "steps": result.steps_done})
            log(f"   {label:9s} scale {scale:8.2e}: train {h['train_acc'][-1]:.3f}, val {h['val_acc'][-1]:.3f}, "
                f"loss {out[label][-1]['final_loss']:.3g}" + (" (diverged)" if result.diverged else ""))
    return out


def main(argv=None, log=print):
    p = options.parser("jaxnets train normalization", __doc__)
    p.add_argument("--data", default=image_data.DEFAULT_SPEC, help=f"MNIST-like data source (default {image_data.DEFAULT_SPEC!r}: the built-in sample, tested on the official test set)")
    p.add_argument("--scales", type=options.integer(2), default=9,
                   help="weight scales, log-spaced from 1e-4 to 1, at least 2 (default 9)")
    p.add_argument("--epochs", type=options.COUNT, default=10, help="epochs over the 1000 training images (default 10)")
    p.add_argument("--seed", type=options.SEED, default=0, help="initialisation, split and minibatch seed (default 0)")
    p.add_argument("--out", default=None, help="runs folder (default ./runs)")
    options.add_overwrite(p)
    args = p.parse_args(argv)
    folder = runs.RunFolder("normalization", args.out, overwrite=args.overwrite)
    t0 = time.perf_counter()
    prepared = image_data.prepare(args.data, "scaled", seed=args.seed)
    scales = np.logspace(-4, 0, args.scales)
    log(f"== normalisation experiment: 5-layer net {HIDDEN}, {len(scales)} weight scales x {list(NORMS)}, "
        f"{args.epochs} epochs on {N_TRAIN} images of {args.data}")
    results = sweep(prepared, scales, args.epochs, args.seed, log)
    best = {k: max(r["val_acc"] for r in v) for k, v in results.items()}
    good = {k: sum(r["val_acc"] >= 0.5 for r in v) for k, v in results.items()}
    metrics = {"experiment": "normalisation across weight scales", "data": prepared.data, "hidden_dims": list(HIDDEN),
               "n_train": min(N_TRAIN, len(prepared.x_train)), "epochs": args.epochs, "batch_size": BATCH, "optimizer": "adam", "learning_rate": 1e-3,
               "scales": scales.tolist(), "results": results, "best_val_acc": best,
               "scales_with_val_acc_at_least_0.5": good, "wall_time_s": time.perf_counter() - t0}
    with folder.writing() as run_dir:
        plots.against_scale(run_dir / "loss_vs_scale.png", scales,
                            {k: [r["final_loss"] for r in v] for k, v in results.items()},
                            "final training loss (mean of last epoch)", "5-layer net: training loss after "
                            f"{args.epochs} epochs", log_y=True)
        plots.against_scale(run_dir / "accuracy_vs_scale.png", scales,
                            {f"{k}: {s}": [r[f"{s}_acc"] for r in v] for k, v in results.items()
                             for s in ("train", "val")},
                            "final accuracy", f"5-layer net: accuracy after {args.epochs} epochs")
        runs.write_metrics(run_dir, metrics)
    log(f"   best validation accuracy {best}; scales (of {len(scales)}) reaching 50% validation accuracy {good} "
        f"-> {folder.final}")
    return metrics


if __name__ == "__main__":
    main()
