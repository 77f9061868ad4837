"""Document 002: cs231n's TwoLayerNet (affine - ReLU - affine - softmax, L2), minibatch SGD.

    jaxnets train two_layer [--run full|overfit] [--data SPEC] [--compare-modes] [...]

W = 1e-4 randn, b = 0; the mean training image is subtracted (in float, not uint8 as 002 did);
minibatches are drawn with replacement; the learning rate is multiplied by `--decay` once per
epoch. `full`: hidden 200, 10000 iterations, batch 200, lr 1e-3, decay 0.99, reg 0.2 (002:
validation 0.9758, test 0.9771 on full MNIST). `overfit`: the first 1000 training images,
hidden 50, 1000 iterations, batch 50, lr 1e-3, decay 0.99, reg 0.5 (002: train accuracy 1.0).
"""
from experiments import image_data
from experiments.options import COUNT, STRENGTH, add_common_args, experiment_parser, preselected, target_from_args
from experiments.runner import run_experiment, start
from jaxnets.data import source_name
from jaxnets.models import two_layer_net

RUNS = {
    "full": {"hidden": 200, "iterations": 10000, "batch_size": 200, "reg": 0.2, "n_train": None,
             "document": {"val_acc": 0.9758, "train_acc": 0.9875, "test_acc": 0.9771, "first_loss": 2.3027},
             "target": None},
    "overfit": {"hidden": 50, "iterations": 1000, "batch_size": 50, "reg": 0.5, "n_train": 1000,
                "document": {"train_acc": 1.0, "val_acc": 0.8753},
                "target": {"metric": "train_acc", "at_least": 1.0}},
}


def main(argv=None, log=print):
    run = preselected(argv, "--run", sorted(RUNS), "full")
    r = RUNS[run]
    p = experiment_parser("two_layer", __doc__)
    p.add_argument("--run", choices=sorted(RUNS), default="full",
                   help="which of 002's runs (default full); sets the defaults of the options below")
    add_common_args(p, data=image_data.DEFAULT_SPEC, learning_rate=1e-3, iterations=r["iterations"],
                    batch_size=r["batch_size"], decay=0.99)
    p.add_argument("--hidden", type=COUNT, default=r["hidden"], help=f"hidden units (default {r['hidden']})")
    p.add_argument("--reg", type=STRENGTH, default=r["reg"], help=f"L2 strength, >= 0 (default {r['reg']})")
    p.add_argument("--n-train", type=COUNT, default=r["n_train"], help="use only the first N training rows")
    args = p.parse_args(argv)
    data_tag = source_name(args.data)
    launch = start(args, "002_two_layer" + ("" if run == "full" else f"_{run}") + f"_{data_tag}")
    prepared = image_data.prepare(args.data, "mean_subtracted", seed=args.seed, n_train=args.n_train)
    model = two_layer_net(input_size=prepared.x_train.shape[1], hidden_size=args.hidden, reg=args.reg)
    return run_experiment(f"002 TwoLayerNet {run} ({data_tag})", model, prepared, launch, document=r["document"],
                          target=target_from_args(args, r["target"]), log=log)


if __name__ == "__main__":
    main()
