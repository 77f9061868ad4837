"""Documents 001 and 003: the 784-10-10 digits MLP, full-batch gradient descent.

    jaxnets train digits [--document 001|003] [--data SPEC] [--compare-modes] [...]

ReLU hidden layer, softmax output; every parameter uniform in [-0.5, 0.5); pixels / 255;
learning rate 0.1. 001 runs 500 iterations and reports train accuracy every 10 (dev 0.83 on
Kaggle's 42000 images); 003 runs 1000 and reports every 100 (held-out ~88.1%). The documents'
data (Kaggle train.csv, `--data csv:PATH`) is not available offline; the default is the built-in
5000 MNIST images (1000 held out) tested on the official 10000 test images.
"""
from experiments import image_data
from experiments.options import add_common_args, experiment_parser, preselected, target_from_args
from experiments.runner import run_experiment, start
from jaxnets.data import source_name
from jaxnets.models import digits_mlp

DOCUMENTS = {
    "001": {"iterations": 500, "report_every": 10,
            "reported": {"val_acc": 0.83, "train_acc_at": {"0": 0.144, "200": 0.789, "300": 0.824, "490": 0.855}}},
    "003": {"iterations": 1000, "report_every": 100,
            "reported": {"val_acc": 0.881, "train_acc_at": {
                str(100 * i): a for i, a in enumerate(
                    [0.1149, 0.6179, 0.7666, 0.8168, 0.8408, 0.8542, 0.8640, 0.8711, 0.8761, 0.8799])}}},
}


def main(argv=None, log=print):
    document = preselected(argv, "--document", sorted(DOCUMENTS), "001")
    doc = DOCUMENTS[document]
    p = experiment_parser("digits", __doc__)
    p.add_argument("--document", choices=sorted(DOCUMENTS), default="001",
                   help="which document's run (default 001); sets the defaults of --iterations and --report-every")
    add_common_args(p, data=image_data.DEFAULT_SPEC, learning_rate=0.1, iterations=doc["iterations"],
                    report_every=doc["report_every"])
    args = p.parse_args(argv)
    data_tag = source_name(args.data)
    launch = start(args, f"{args.document}_digits_{data_tag}")
    prepared = image_data.prepare(args.data, "scaled", seed=args.seed)
    return run_experiment(f"{args.document} digits 784-10-10 ({data_tag})", digits_mlp(), prepared, launch,
                          document=doc["reported"], target=target_from_args(args), log=log)


if __name__ == "__main__":
    main()
