"""Document 000's occupancy classifier: 5-5-1 tanh/sigmoid net, full-batch gradient descent.

    jaxnets train occupancy [--data occupancy[:DIR]] [--train-norms] [--compare-modes] [...]

UCI Occupancy Detection, datatraining.txt (8143 rows) -> datatest.txt (2665 rows); features
Temperature, Humidity, Light, CO2, HumidityRatio, each scaled to unit L2 norm across the
samples. Defaults are the document's: W1 = 0.01 randn, W2 = 0.01 rand, learning rate 1.2,
10000 iterations, cost every 1000. The document normalised the test set with its own norms
(an erratum, reproduced by default so the numbers compare); `--train-norms` divides both sets
by the training norms instead.
"""
from experiments.options import add_common_args, experiment_parser, target_from_args
from experiments.runner import Prepared, run_experiment, start
from jaxnets.data import OCCUPANCY_FEATURES, load_dataset, normalize_features, source_name
from jaxnets.models import occupancy_net

DOCUMENT = {"test_acc": 0.97, "cost_at": {"0": 0.693147, "1000": 0.512973, "5000": 0.226376, "9000": 0.063994}}
TARGET = {"metric": "test_acc", "at_least": 0.97}


def prepare(spec="occupancy", train_norms=False):
    ds = load_dataset(spec)
    x_tr, x_te = normalize_features(ds.x_train, ds.x_test, use_train_norms=train_norms)
    how = ("each feature divided by its L2 norm over the " +
           ("training samples, for both sets" if train_norms else
            "samples of its own set (000; the test set uses its own norms - erratum kept for comparison)"))
    return Prepared(x_tr.astype("float32"), ds.y_train, None, None, x_te.astype("float32"), ds.y_test,
                    data={"spec": spec, "name": ds.name, "source": ds.source, "features": list(OCCUPANCY_FEATURES),
                          "preprocessing": how, "train_norms": train_norms})


def main(argv=None, log=print):
    p = experiment_parser("occupancy", __doc__)
    add_common_args(p, data="occupancy", learning_rate=1.2, iterations=10000, report_every=1000)
    p.add_argument("--train-norms", action="store_true", help="normalise the test set with the training norms")
    args = p.parse_args(argv)
    source_name(args.data)  # a bad --data is refused before anything else
    launch = start(args, "000_occupancy")
    metrics = run_experiment("000 occupancy 5-5-1", occupancy_net(), prepare(args.data, args.train_norms), launch,
                             document=DOCUMENT, target=target_from_args(args, TARGET), log=log)
    loss = metrics["history"]["loss"]
    log("   cost at " + ", ".join(f"{i}: {loss[int(i)]:.6f} (document {c})" for i, c in DOCUMENT["cost_at"].items()
                                  if int(i) < len(loss)))
    return metrics


if __name__ == "__main__":
    main()
