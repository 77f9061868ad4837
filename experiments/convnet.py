"""The ConvNet of document 000's building blocks: conv - ReLU - 2x2 max pool - affine - softmax.

    jaxnets train convnet [--data SPEC] [--filters 8] [--compare-modes] [...]

Document 000 derives the layers but trains no network, so the training setup is ours: He
initialisation, pixels / 255 minus the mean pixel, minibatch SGD with replacement (plain
optax.sgd, per-epoch decay), 3x3 filters with pad 1. Document 000's two example filters on a
real photograph are `experiments.filters` (`jaxnets train filters`).
"""
from experiments import image_data
from experiments.options import COUNT, add_common_args, experiment_parser, target_from_args
from experiments.runner import run_experiment, start
from jaxnets.data import source_name
from jaxnets.models import conv_net


def main(argv=None, log=print):
    p = experiment_parser("convnet", __doc__)
    add_common_args(p, data=image_data.DEFAULT_SPEC, learning_rate=0.05, iterations=3000, batch_size=64,
                    decay=0.95)
    p.add_argument("--filters", type=COUNT, default=8, help="number of 3x3 filters (default 8)")
    args = p.parse_args(argv)
    data_tag = source_name(args.data)
    launch = start(args, f"000_convnet_{data_tag}")
    prepared = image_data.prepare(args.data, "conv", seed=args.seed)
    model = conv_net(input_shape=prepared.x_train.shape[1:], num_filters=args.filters)
    return run_experiment(f"000 ConvNet {args.filters} filters ({data_tag})", model, prepared, launch,
                          target=target_from_args(args), log=log)


if __name__ == "__main__":
    main()
