"""The ConvNet of document 000's building blocks: conv - ReLU - 2x2 max pool - affine - softmax.

    jaxnets train convnet [--data SPEC] [--filters 8] [--compare-modes] [...]

Document 000 derives the layers but trains no network, so the training setup is ours: He
initialisation, pixels / 255 minus the mean pixel, minibatch SGD with replacement (plain
optax.sgd, per-epoch decay), 3x3 filters with pad 1. Document 000's two example filters on a
real photograph are `experiments.filters` (`jaxnets train filters`).
"""
from experiments import image_data
from experiments.runner import (add_common_args, config_from_args, experiment_parser, run_experiment, run_kwargs,
                                target_from_args)
from jaxnets.models import conv_net


def main(argv=None, log=print):
    p = experiment_parser("convnet", __doc__)
    add_common_args(p, data=image_data.DEFAULT_SPEC, learning_rate=0.05, iterations=3000, batch_size=64,
                    decay=0.95)
    p.add_argument("--filters", type=int, default=8, help="number of 3x3 filters (default 8)")
    args = p.parse_args(argv)
    prepared = image_data.prepare(args.data, "conv", seed=args.seed)
    model = conv_net(input_shape=prepared.x_train.shape[1:], num_filters=args.filters)
    data_tag = prepared.data["name"]
    return run_experiment(f"000_convnet_{data_tag}", f"000 ConvNet {args.filters} filters ({data_tag})", model,
                             prepared, config_from_args(args), target=target_from_args(args), log=log, **run_kwargs(args))


if __name__ == "__main__":
    main()
