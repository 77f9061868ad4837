"""A tiny decoder-only transformer language model of first names (causal self-attention).

    jaxnets train transformer_lm [--dim 64] [--heads 4] [--blocks 2] [--ffn 256] [--activation gelu] [...]

The same data, split, loss and metrics as `jaxnets train char_lm` (its module docstring): the
1990 US Census first names, read as `.NAME.`, split by name into 80% train, 10% validation,
10% test; the reported metrics are the loss per character (nats) and perplexity of each set,
the next-character accuracy, and `samples.txt` (`jaxnets sample RUN` draws more). The model:
token and learned positional embeddings, `--blocks` pre-norm transformer blocks (causal
multi-head self-attention with `--heads` heads, an MLP `--ffn` wide), a final layer norm and
a linear map to the characters. The run folder also holds `attention_map.png`: the attention
weights of every head of the first block for the first validation name (query token against
key token; each row sums to 1, the keys after the query are masked).
Our setup (no document trains one): Adam, learning rate 0.003, minibatches of 64 names,
gradients clipped to global norm 1.
"""
import numpy as np

from experiments import plots
from experiments.char_lm import language_metrics, prepare
from experiments.options import COUNT, add_common_args, experiment_parser
from experiments.runner import run_experiment, start
from jaxnets.models import transformer_lm
from jaxnets.models.transformer import attention_maps
from jaxnets.ops.attention import ACTIVATIONS


def attention_picture(path, model, params, x, alphabet):
    """attention_map.png: block 0's heads for the token ids x (T,) of one name, up to its end."""
    tokens = np.asarray(x)
    end = int(np.argmax(tokens[1:] == 0)) + 1 if np.any(tokens[1:] == 0) else len(tokens)
    tokens = tokens[:end + 1] if end < len(tokens) else tokens  # .NAME. with both boundaries
    labels = ["." if t == 0 else alphabet[t - 1] for t in tokens]
    maps = np.asarray(attention_maps(model, params, tokens[None].astype(np.int32)))[0, 0]
    name = "".join(labels[1:-1]) if labels[-1] == "." else "".join(labels[1:])
    plots.attention_map(path, maps, labels, f"transformer_lm, block 0 attention for the validation name {name!r}")
    return name


def main(argv=None, log=print):
    p = experiment_parser("transformer_lm", __doc__)
    add_common_args(p, data="names", learning_rate=0.003, iterations=600, batch_size=64, optimizer="adam",
                    clip_norm=1.0)
    p.add_argument("--dim", type=COUNT, default=64, help="model width D (default 64)")
    p.add_argument("--heads", type=COUNT, default=4, help="attention heads; D must be divisible by them (default 4)")
    p.add_argument("--blocks", type=COUNT, default=2, help="transformer blocks (default 2)")
    p.add_argument("--ffn", type=COUNT, default=256, help="MLP width (default 256)")
    p.add_argument("--activation", choices=list(ACTIVATIONS), default="gelu", help="MLP activation (default gelu)")
    args = p.parse_args(argv)
    if args.dim % args.heads:
        p.error(f"--dim {args.dim} must be divisible by --heads {args.heads}")
    launch = start(args, "transformer_lm")
    prepared, corpus = prepare(args.data)
    model = transformer_lm(vocab_size=len(corpus.vocab), seq_len=prepared.data["seq_len"], dim=args.dim,
                           heads=args.heads, blocks=args.blocks, ffn=args.ffn, activation=args.activation)
    metrics = language_metrics(prepared, corpus, args.seed)

    def extra(model, result, run_dir):
        out = metrics(model, result, run_dir)
        if run_dir is not None:
            attention_picture(run_dir / "attention_map.png", model, result.params, prepared.x_val[0],
                              corpus.alphabet)
        return out

    return run_experiment("Transformer LM, names", model, prepared, launch, log=log, extra=extra)


if __name__ == "__main__":
    main()
