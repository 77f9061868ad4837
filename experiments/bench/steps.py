"""Workload T: one whole training step of each sequence model at its `jaxnets reproduce` size,
jaxnets in each gradient mode against the PyTorch peer's step on the same batch (steps/s).

A step is what training does once: the loss and every gradient (forward + backward), the
gradient clipped to its global norm, the Adam update. The models and their training settings
are the experiments' defaults (`experiments/row_lstm.py`, `char_lm.py`, `transformer_lm.py`):

- row_lstm: MNIST read row by row (28 steps of 28 pixels), an LSTM of 64 hidden units, the
  last state's affine to 10 classes; Adam 0.005, clip 5.
- char_lm (LSTM and GRU): the names corpus (64 names of `seq_len` tokens), embedding 16, 64
  hidden units, temporal affine to the characters; Adam 0.01, clip 5.
- transformer_lm: the same names, width 64, 4 heads, 2 pre-norm blocks, MLP 256 (GELU); Adam
  0.003, clip 1.

The batch is the training split's first 64 rows; every model starts from its seed-0
parameters. jaxnets' step is one jitted call (`gradient(model, mode)`, then the run's own optax
chain, `make_optimizer`); PyTorch's is `experiments.sequence_peers.training_step` — the very
step the peer trains with (zero_grad, CrossEntropyLoss(ignore_index=-1), backward,
clip_grad_norm_, Adam) — on the peer net built from the same parameters
(`sequence_peers.torch_net`), with the thread count the `torch` note of the run states. Before
timing, both losses on the batch must agree (float32 rounding), so the rows time the same
model. Candidates of one model are timed round-robin in one group.
"""
import jax
import jax.numpy as jnp
import numpy as np

from experiments.bench.harness import Group, Rows
from jaxnets.grads import MODES, gradient
from jaxnets.models import build_model
from jaxnets.training import TrainConfig, make_optimizer

BATCH = 64
#: the hand-written modes (jaxnets.grads.MODES without autodiff); the best one counts
HAND_WRITTEN = tuple(m for m in MODES if m != "autodiff")


def _names_data():
    from experiments.char_lm import prepare

    prepared, corpus = prepare("names")
    return prepared, {"vocab_size": len(corpus.vocab), "seq_len": prepared.data["seq_len"]}


def _mnist_data():
    from experiments import image_data

    prepared = image_data.prepare(image_data.DEFAULT_SPEC, "conv", seed=0)
    return prepared, {"input_shape": list(prepared.x_train.shape[1:])}


#: (label, model, its config beyond the data's sizes, data, learning rate, clip norm): the
#: experiments' defaults
CASES = (
    ("row_lstm, LSTM", "row_lstm", {"hidden": 64, "cell": "lstm"}, _mnist_data, 0.005, 5.0),
    ("char_lm, LSTM", "char_lm", {"embed": 16, "hidden": 64, "cell": "lstm"}, _names_data, 0.01, 5.0),
    ("char_lm, GRU", "char_lm", {"embed": 16, "hidden": 64, "cell": "gru"}, _names_data, 0.01, 5.0),
    ("transformer_lm", "transformer_lm", {"dim": 64, "heads": 4, "blocks": 2, "ffn": 256, "activation": "gelu"},
     _names_data, 0.003, 1.0),
)


def jax_step(model, mode, learning_rate, clip_norm, n_train):
    """jit of `(params, opt_state, x, y) -> (loss, params, opt_state)`: one training step of
    `model` in gradient mode `mode`, with the optimiser `train()` builds for these settings."""
    config = TrainConfig(mode=mode, learning_rate=learning_rate, optimizer="adam", clip_norm=clip_norm,
                         iterations=1, batch_size=BATCH)
    grad = gradient(model, mode)
    opt = make_optimizer(config, n_train)

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads, _ = grad(params, {}, x, y, None)
        updates, opt_state = opt.update(grads, opt_state, params)
        return loss, jax.tree.map(lambda p, u: p + u, params, updates), opt_state

    return step, opt


def case_setup(case, cache=None):
    """(model, params0 as float32 NumPy, x, y, n_train) of one CASES entry; `cache` (a dict)
    keeps each data set loaded once."""
    _label, name, config, data, _lr, _clip = case
    cache = {} if cache is None else cache
    if data not in cache:
        cache[data] = data()
    prepared, sizes = cache[data]
    model = build_model(name, {**sizes, **config})
    params0 = {k: np.asarray(v, np.float32) for k, v in model.init(jax.random.key(0)).items()}
    return model, params0, prepared.x_train[:BATCH], prepared.y_train[:BATCH], len(prepared.x_train)


def torch_step(torch, name, model, params0, x, y, learning_rate, clip_norm):
    """`call(_) -> loss`: the PyTorch peer's training step on (x, y)."""
    from experiments.sequence_peers import torch_net, training_step

    net = torch_net(name, model.config, params0)
    step = training_step(net, learning_rate, clip_norm)
    tx = torch.from_numpy(np.asarray(x, np.int64 if model.token_inputs else np.float32))
    ty = torch.from_numpy(np.asarray(y, np.int64))
    return lambda _: step(tx, ty)


def step_rows(cfg, torch=None, cases=CASES):
    """One training step of each case: every jaxnets gradient mode and, when torch is given,
    the PyTorch peer's step, timed round-robin per model (rows in steps/s)."""
    rows = Rows("T", "steps/s")
    data = {}
    for case in cases:
        label, name, _config, _data, lr, clip = case
        model, params0, x, y, n_train = case_setup(case, data)
        params = {k: jnp.asarray(v) for k, v in params0.items()}
        xd, yd = jnp.asarray(x), jnp.asarray(y)
        group = Group()
        losses = {}
        for mode in MODES:
            step, opt = jax_step(model, mode, lr, clip, n_train)
            opt_state = opt.init(params)
            losses[mode] = float(step(params, opt_state, xd, yd)[0])
            kind = "step-autodiff" if mode == "autodiff" else "step"
            group.add(f"{label}: jaxnets {mode}", kind,
                      lambda _, step=step, opt_state=opt_state: step(params, opt_state, xd, yd),
                      inner=cfg["inner"], mode=mode)
        if torch is not None:
            call = torch_step(torch, name, model, params0, x, y, lr, clip)
            theirs = float(call(None))
            if not np.allclose(theirs, losses["manual"], rtol=1e-4, atol=1e-5):
                raise RuntimeError(f"bench T: PyTorch's {label} loss {theirs} is not ours {losses['manual']} on the "
                                   "same batch and parameters; the rows would time different models")
            group.add(f"{label}: PyTorch peer step", "torch-step", call, inner=cfg["inner"])
        group.run(rows, cfg["rounds"])
    return rows.rows
