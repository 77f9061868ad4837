"""cs231n's dropout experiment: the gap between training and validation accuracy of a
two-layer net with and without dropout, on a deliberately small training set.

    jaxnets train dropout [--data SPEC] [--rates 0,0.75] [--epochs 25] [...]

784 - 500 - 10 (ReLU, dropout after the hidden layer), the first 500 training images,
Adam (lr 5e-4, batches of 100 drawn with replacement) for --epochs epochs, one run per
dropout rate (the probability of dropping; cs231n compares keep probabilities 1 and 0.25),
from the same initial parameters. Writes the run folder `dropout`: metrics.json (per rate the
train and validation accuracy after every epoch, and the final gap) and accuracy.png.
"""
import argparse
import time

import jax
import numpy as np

from experiments import image_data, options, plots, runs
from jaxnets.models import fc_net
from jaxnets.training import TrainConfig, train

N_TRAIN = 500
BATCH = 100


def main(argv=None, log=print):
    p = options.parser("jaxnets train dropout", __doc__)
    p.add_argument("--data", default=image_data.DEFAULT_SPEC, help=f"MNIST-like data source (default {image_data.DEFAULT_SPEC!r}: the built-in sample, tested on the official test set)")
    p.add_argument("--rates", default="0,0.75", help="dropout rates to compare, comma-separated (default 0,0.75)")
    p.add_argument("--epochs", type=options.COUNT, default=25, help="epochs over the 500 training images (default 25)")
    p.add_argument("--seed", type=options.SEED, default=0,
                   help="initialisation, split, minibatch and dropout seed (default 0)")
    p.add_argument("--out", default=None, help="runs folder (default ./runs)")
    options.add_overwrite(p)
    args = p.parse_args(argv)
    try:
        rates = [options.PROBABILITY(r) for r in args.rates.split(",")]
    except argparse.ArgumentTypeError:
        raise ValueError(f"--rates takes comma-separated numbers in [0, 1), got {args.rates!r}") from None
    folder = runs.RunFolder("dropout", args.out, overwrite=args.overwrite)
    t0 = time.perf_counter()
    prepared = image_data.prepare(args.data, "scaled", seed=args.seed)
    x, y = prepared.x_train[:N_TRAIN], prepared.y_train[:N_TRAIN]
    epoch = max(len(x) // BATCH, 1)
    config = TrainConfig(learning_rate=5e-4, iterations=args.epochs * epoch, batch_size=BATCH, report_every=epoch,
                         optimizer="adam", seed=args.seed)
    log(f"== dropout experiment: 784-500-10, {N_TRAIN} training images of {args.data}, rates {rates}, "
        f"{args.epochs} epochs")
    results, curves = {}, {}
    for rate in rates:
        model = fc_net((500,), input_size=x.shape[1], dropout=rate)
        result = train(model, model.init(jax.random.key(args.seed)), (x, y, prepared.x_val, prepared.y_val), config,
                       progress=False)
        h = result.history
        results[str(rate)] = {"train_acc": h["train_acc"], "val_acc": h["val_acc"], "report_step": h["report_step"],
                              "final_train_acc": h["train_acc"][-1], "final_val_acc": h["val_acc"][-1],
                              "gap": h["train_acc"][-1] - h["val_acc"][-1], "best_val_acc": max(h["val_acc"])}
        curves[f"rate {rate}: train"] = h["train_acc"]
        curves[f"rate {rate}: validation"] = h["val_acc"]
        r = results[str(rate)]
        log(f"   dropout {rate}: train {r['final_train_acc']:.3f}, val {r['final_val_acc']:.3f}, gap {r['gap']:.3f}")
    metrics = {"experiment": "dropout: train/validation gap", "data": prepared.data, "n_train": len(x),
               "hidden_dims": [500], "epochs": args.epochs, "batch_size": BATCH, "optimizer": "adam",
               "learning_rate": 5e-4, "results": results, "wall_time_s": time.perf_counter() - t0}
    with folder.writing() as run_dir:
        plots.accuracy_curves(run_dir / "accuracy.png", np.asarray(h["report_step"]) / epoch, curves,
                              title=f"784-500-10 on {N_TRAIN} images: with and without dropout", xlabel="epochs")
        runs.write_metrics(run_dir, metrics)
    log(f"   -> {folder.final}")
    return metrics


if __name__ == "__main__":
    main()
