"""MNIST read row by row by an LSTM (or RNN / GRU): sequence classification of 28 steps of 28 pixels.

    jaxnets train row_lstm [--data SPEC] [--cell lstm|rnn|gru] [--hidden 64] [--clip-norm 5] [...]

Each image is a sequence: step t reads pixel row t (pixels / 255 minus the mean pixel, as the
ConvNets' inputs), and the class scores are an affine map of the last hidden state (the
"sequential MNIST" of Le, Jaitly and Hinton 2015 reads pixels one at a time; rows are the
common, shorter variant). Trained on the built-in 5000 images (1000 held out for validation),
tested on the official 10000. Our setup: Adam, learning rate 0.005, minibatches of 64,
gradients clipped to global norm 5.
"""
from experiments import image_data
from experiments.options import COUNT, add_common_args, experiment_parser, target_from_args
from experiments.runner import run_experiment, start
from jaxnets.data import source_name
from jaxnets.models import row_lstm
from jaxnets.models.sequence import CELLS


def main(argv=None, log=print):
    p = experiment_parser("row_lstm", __doc__)
    add_common_args(p, data=image_data.DEFAULT_SPEC, learning_rate=0.005, iterations=1000, batch_size=64,
                    optimizer="adam", clip_norm=5.0)
    p.add_argument("--cell", choices=list(CELLS), default="lstm", help="the recurrent cell (default lstm)")
    p.add_argument("--hidden", type=COUNT, default=64, help="hidden units (default 64)")
    args = p.parse_args(argv)
    data_tag = source_name(args.data)
    launch = start(args, f"row_{args.cell}_{data_tag}")
    prepared = image_data.prepare(args.data, "conv", seed=args.seed)
    model = row_lstm(input_shape=prepared.x_train.shape[1:], hidden=args.hidden, cell=args.cell)
    return run_experiment(f"Row-by-row {args.cell.upper()} ({data_tag})", model, prepared, launch,
                          target=target_from_args(args), log=log)


if __name__ == "__main__":
    main()
