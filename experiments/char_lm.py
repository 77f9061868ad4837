"""A character-level language model of first names (LSTM, or RNN / GRU): cs231n assignment 3's layers.

    jaxnets train char_lm [--cell lstm|rnn|gru] [--hidden 64] [--embed 16] [--clip-norm 5] [...]

Data: the 1990 US Census first names shipped in the package (the `names` package on PyPI, MIT;
`--data names:DIR` reads the same files elsewhere), 5163 distinct names split by name (an MD5
bucket of the name, never by character) into 80% train, 10% validation, 10% test. A name is
read as `.NAME.` (the boundary token starts and ends it): the model predicts each next
character and the end.

The training loss is the mean cross-entropy per character of each minibatch of names (cs231n's
temporal softmax loss, summed over steps and averaged over names, times names / characters);
the reported metrics are the loss per character (nats) and the perplexity exp(loss) on the
train, validation and test names, and the next-character accuracy. The run folder also holds
`samples.txt`: names drawn from the trained model (`jaxnets sample RUN` draws more).
Our setup (no document trains one): Adam, learning rate 0.01, minibatches of 64 names,
gradients clipped to global norm 5.
"""
import math

import jax

from experiments.options import COUNT, add_common_args, experiment_parser
from experiments.runner import Prepared, run_experiment, start
from jaxnets.data import encode, load_names, split_by_item
from jaxnets.data.text import decode
from jaxnets.models import char_lm
from jaxnets.models.sequence import CELLS, sample, token_nll

#: names drawn into samples.txt, at temperature 1
N_SAMPLES = 20


def prepare(spec):
    corpus = load_names(spec)
    split = split_by_item(corpus.words)
    seq_len = max(map(len, corpus.words)) + 1
    sets = [encode(part, corpus.alphabet, seq_len) for part in split]
    data = {"spec": spec, "name": "census-first-names", "source": corpus.source, "alphabet": corpus.alphabet,
            "seq_len": seq_len, "split": "by name: MD5 bucket, 10% test, 10% validation, the rest train",
            "preprocessing": "tokens: 0 = the boundary '.', 1.. the alphabet; targets -1 after the end"}
    return Prepared(*sets[0], *sets[1], *sets[2], data=data), corpus


def language_metrics(prepared, corpus, seed):
    """`extra` for run_experiment: loss per character and perplexity of each set, and
    samples.txt."""

    def extra(model, result, run_dir):
        out = {}
        for name, x, y in (("train", prepared.x_train, prepared.y_train), ("val", prepared.x_val, prepared.y_val),
                           ("test", prepared.x_test, prepared.y_test)):
            total, count = token_nll(model, result.params, x, y)
            out[f"{name}_loss_per_char"] = total / count
            out[f"{name}_perplexity"] = math.exp(total / count)
        if run_dir is not None:
            key = jax.random.key(seed)
            names = [decode(sample(model, result.params, jax.random.fold_in(key, i)), corpus.alphabet)
                     for i in range(N_SAMPLES)]
            (run_dir / "samples.txt").write_text("\n".join(names) + "\n")
        return out

    return extra


def main(argv=None, log=print):
    p = experiment_parser("char_lm", __doc__)
    add_common_args(p, data="names", learning_rate=0.01, iterations=1000, batch_size=64, optimizer="adam",
                    clip_norm=5.0)
    p.add_argument("--cell", choices=list(CELLS), default="lstm", help="the recurrent cell (default lstm)")
    p.add_argument("--hidden", type=COUNT, default=64, help="hidden units (default 64)")
    p.add_argument("--embed", type=COUNT, default=16, help="embedding width (default 16)")
    args = p.parse_args(argv)
    launch = start(args, f"char_lm_{args.cell}")
    prepared, corpus = prepare(args.data)
    model = char_lm(vocab_size=len(corpus.vocab), seq_len=prepared.data["seq_len"], embed=args.embed,
                    hidden=args.hidden, cell=args.cell)
    return run_experiment(f"Char {args.cell.upper()} LM, names", model, prepared, launch, log=log,
                          extra=language_metrics(prepared, corpus, args.seed))


if __name__ == "__main__":
    main()
