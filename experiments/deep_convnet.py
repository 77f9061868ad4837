"""A deeper ConvNet with batch norm and dropout (cs231n assignment 2's layers, hand-derived).

    jaxnets train deep_convnet [--data SPEC] [--filters 32,64,128] [--hidden 256] [--dropout 0.5] [...]

{conv 3x3 (same padding) - spatial batch norm - ReLU - 2x2 max pool} per entry of --filters,
then affine - batch norm - ReLU - dropout - affine - softmax; He initialisation; pixels / 255
minus the mean pixel; batches of 64 drawn with replacement; Adam (the hand-written cs231n rule)
with learning rate 2e-3 decayed by 0.9 once per epoch; L2 1e-4 on every weight. The default
1860 iterations are 30 epochs of the built-in sample's 4000 training images. Inference uses
the running batch-norm statistics and no dropout. Test-accuracy targets recorded as met or
missed (the project's, from what small framework-built CNNs with batch norm and dropout reach
on the same data): >= 98.3% on the built-in sample (4000 training images) -> official MNIST
test set, >= 92.6% on Fashion-MNIST (50000 -> 10000); --target overrides.
"""
from experiments import image_data
from experiments.options import COUNT, PROBABILITY, STRENGTH, add_common_args, experiment_parser, target_from_args
from experiments.runner import run_experiment, start
from jaxnets.data import source_name
from jaxnets.models import deep_conv_net

#: test-accuracy targets by data set (the issue's)
TARGETS = {"sample+mnist-test": 0.983, "fashion-mnist": 0.926}


def _ints(text):
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--filters takes comma-separated whole numbers, e.g. 32,64; got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"--filters takes positive numbers of filters, got {text!r}")
    return values


def main(argv=None, log=print):
    p = experiment_parser("deep_convnet", __doc__)
    add_common_args(p, data=image_data.DEFAULT_SPEC, learning_rate=2e-3, iterations=1860, batch_size=64,
                    decay=0.9, optimizer="adam")
    p.add_argument("--filters", default="32,64,128", help="filters per conv block, comma-separated (default 32,64,128)")
    p.add_argument("--hidden", type=COUNT, default=256, help="units of the hidden affine layer (default 256)")
    p.add_argument("--dropout", type=PROBABILITY, default=0.5,
                   help="probability of dropping a hidden unit, in [0, 1) (default 0.5)")
    p.add_argument("--no-batchnorm", action="store_true", help="leave out every batch norm")
    p.add_argument("--reg", type=STRENGTH, default=1e-4, help="L2 strength on every weight, >= 0 (default 1e-4)")
    args = p.parse_args(argv)
    filters = _ints(args.filters)
    data_tag = source_name(args.data)
    launch = start(args, f"deep_convnet_{data_tag}")
    prepared = image_data.prepare(args.data, "conv", seed=args.seed)
    model = deep_conv_net(input_shape=prepared.x_train.shape[1:], filters=filters, hidden=args.hidden,
                          batchnorm=not args.no_batchnorm, dropout=args.dropout, reg=args.reg)
    default_target = {"metric": "test_acc", "at_least": TARGETS[data_tag]} if data_tag in TARGETS else None
    return run_experiment(f"Deep ConvNet {args.filters} ({data_tag})", model, prepared, launch,
                          target=target_from_args(args, default_target), log=log)


if __name__ == "__main__":
    main()
