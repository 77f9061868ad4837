"""Draw names from a trained character language model: `jaxnets sample RUN_DIR [options]`.

RUN_DIR is a run folder of `jaxnets train char_lm` or `jaxnets train transformer_lm`. Each name starts with --prompt (letters of
the run's alphabet; the case is matched to it) and continues one character at a time from
softmax(scores / --temperature) until the model draws the end or --max-len characters are
reached (a transformer_lm draws at most its seq_len - 1 characters: its positional embedding
has seq_len rows). Lower temperatures give likelier, more repetitive names; 1 samples the model as
trained.
"""
from pathlib import Path

import jax

from experiments import options, runs
from jaxnets.data import DataError
from jaxnets.data.text import decode
from jaxnets.models import build_model
from jaxnets.models.sequence import sample


#: the models `sample` draws from: the language models of the names corpus
LANGUAGE_MODELS = ("char_lm", "transformer_lm")


def load_language_run(run_dir):
    """(model, params, alphabet) of a char_lm or transformer_lm run folder; DataError naming
    what is wrong."""
    run_dir = Path(run_dir)
    for name in ("metrics.json", "params.npz"):
        if not (run_dir / name).is_file():
            raise DataError(f"{run_dir}: not a run folder, {name} is missing")
    metrics = runs.read_metrics(run_dir, needs=("model", "model_config", "data"))
    if metrics["model"] not in LANGUAGE_MODELS:
        raise DataError(f"{run_dir}: a {metrics['model']!r} run; sample draws from a char_lm or transformer_lm run "
                        "(`jaxnets train char_lm`, `jaxnets train transformer_lm`)")
    alphabet = metrics["data"].get("alphabet") if isinstance(metrics["data"], dict) else None
    if not isinstance(alphabet, str) or not alphabet:
        raise DataError(f"{run_dir / 'metrics.json'}: data.alphabet is missing")
    model = build_model(metrics["model"], metrics["model_config"])
    params, _ = runs.load_params(run_dir, model)
    return model, params, alphabet


def prompt_tokens(prompt, alphabet):
    """Token ids 1.. of the prompt's characters (matched to the alphabet's case)."""
    if alphabet.isupper():
        prompt = prompt.upper()
    elif alphabet.islower():
        prompt = prompt.lower()
    bad = [c for c in prompt if c not in alphabet]
    if bad:
        raise ValueError(f"--prompt {prompt!r}: {bad[0]!r} is not in the run's alphabet {alphabet!r}")
    return [alphabet.index(c) + 1 for c in prompt]


def main(argv=None, log=print):
    p = options.parser("jaxnets sample", __doc__)
    p.add_argument("run_dir", help="a run folder of `jaxnets train char_lm` or `jaxnets train transformer_lm`")
    p.add_argument("--prompt", default="", help="the first letters of every name (default: none)")
    p.add_argument("--temperature", type=options.POSITIVE, default=1.0, help="softmax temperature > 0 (default 1)")
    p.add_argument("--num", type=options.COUNT, default=10, help="how many names (default 10)")
    p.add_argument("--max-len", type=options.COUNT, default=None,
                   help="at most this many characters per name, the prompt's included (default: the longest "
                        "training name)")
    p.add_argument("--seed", type=options.SEED, default=0, help="sampling seed (default 0)")
    args = p.parse_args(argv)
    model, params, alphabet = load_language_run(args.run_dir)
    prefix = prompt_tokens(args.prompt, alphabet)
    max_len = (model.input_shape[0] if args.max_len is None else args.max_len + 1)
    if len(prefix) >= max_len - 1:
        raise ValueError(f"--prompt has {len(prefix)} characters: no room left under --max-len {max_len - 1}")
    key = jax.random.key(args.seed)
    for i in range(args.num):
        drawn = sample(model, params, jax.random.fold_in(key, i), prefix, args.temperature, max_len)
        print(decode(prefix + drawn, alphabet))
    return 0


if __name__ == "__main__":
    main()
