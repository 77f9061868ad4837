"""The PyTorch peer of a sequence run: the same model in `torch.nn` trained the same way.

    python -m experiments.sequence_peers RUN_DIR [RUN_DIR ...]

RUN_DIR is a finished `jaxnets train char_lm` or `jaxnets train row_lstm` run (any cell), or
a `jaxnets train transformer_lm` run. The peer is `nn.Embedding` + the cell (`nn.LSTM`,
`nn.GRU` or `nn.RNN`) + `nn.Linear` (char_lm), the cell + `nn.Linear` on the last step
(row_lstm), or `nn.Embedding` +
a positional `nn.Parameter` + `nn.TransformerEncoderLayer` (norm_first=True, dropout 0, the
run's activation) per block with a causal mask + `nn.LayerNorm` + `nn.Linear`
(transformer_lm), of the run's sizes, started from the run's OWN
initial parameters (drawn again from its seed and copied in; PyTorch's LSTM gate order
i, f, g, o is ours i, f, o, g reordered; the GRU's r, z, n and its two biases are PyTorch's
own; the LSTM's and RNN's second bias, bias_hh, is held at 0: ours has one), trained on the
same data with the same minibatches (the run's
row indices, drawn with replacement from its seed), `torch.optim.Adam` with the run's
learning rate (betas 0.9, 0.999, eps 1e-8, as cs231n's Adam the run used) and
`clip_grad_norm_` to the run's clip norm, in float32, for the run's number of steps. The loss
is per token (`CrossEntropyLoss(ignore_index=-1)`) for the language model, per image for the
classifier. Writes `torch_peer.json` into the run folder and prints ours beside the peer's.
PyTorch is an optional extra, never a dependency (the CPU wheel: docs/performance.md).
"""
import json
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np

from experiments import char_lm, image_data, runs
from jaxnets.models import build_model
from jaxnets.training import sample_batch_indices


#: our cell -> (its torch.nn module, our gate order -> PyTorch's along the gates axis, whether
#: ours has PyTorch's second bias bias_hh as `bh`)
TORCH_CELLS = {"lstm": ("LSTM", (0, 1, 3, 2), False), "gru": ("GRU", (0, 1, 2), True), "rnn": ("RNN", (0,), False)}


def _cell_into_torch(cell, module, params):
    """Copy Wx, Wh, b (and the GRU's bh) into a one-layer nn.LSTM / nn.GRU / nn.RNN: weights
    transposed, gates reordered (ours i, f, o, g is PyTorch's i, f, g, o; the GRU's r, z, n is
    PyTorch's own)."""
    import torch

    _, order, second_bias = TORCH_CELLS[cell]

    def reorder(a):
        parts = np.split(np.asarray(a, np.float32), len(order), axis=-1)
        return np.concatenate([parts[k] for k in order], axis=-1)

    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(reorder(params["Wx"]).T.copy()))
        module.weight_hh_l0.copy_(torch.from_numpy(reorder(params["Wh"]).T.copy()))
        module.bias_ih_l0.copy_(torch.from_numpy(reorder(params["b"]).copy()))
        if second_bias:
            module.bias_hh_l0.copy_(torch.from_numpy(reorder(params["bh"]).copy()))
        else:
            module.bias_hh_l0.zero_()
    if not second_bias:
        # ours has one bias b; PyTorch adds bias_ih + bias_hh. Training both would move the sum
        # by two Adam steps per step, so bias_hh stays 0.
        module.bias_hh_l0.requires_grad_(False)


def _linear_into_torch(linear, w, b):
    import torch

    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(np.asarray(w, np.float32).T.copy()))
        linear.bias.copy_(torch.from_numpy(np.array(b, np.float32)))


def recurrent_net(name, config, params0):
    """nn.Embedding + the cell's nn.LSTM / nn.GRU / nn.RNN + nn.Linear (char_lm), or the cell +
    nn.Linear on the last step (row_lstm), holding the run's initial parameters."""
    import torch
    from torch import nn

    hidden = config["hidden"]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            if name == "char_lm":
                self.embed = nn.Embedding(config["vocab_size"], config["embed"])
                with torch.no_grad():
                    self.embed.weight.copy_(torch.from_numpy(params0["W_embed"].astype(np.float32)))
                d = config["embed"]
            else:
                self.embed = None
                c, _, w = config["input_shape"]
                d = c * w
            self.cell = getattr(nn, TORCH_CELLS[config["cell"]][0])(d, hidden, batch_first=True)
            _cell_into_torch(config["cell"], self.cell, params0)
            out = "W_vocab" if self.embed is not None else "W_out"
            self.out = nn.Linear(hidden, params0[out].shape[1])
            _linear_into_torch(self.out, params0[out], params0["b_vocab" if self.embed is not None else "b_out"])

        def forward(self, x):
            if self.embed is not None:
                return self.out(self.cell(self.embed(x))[0])
            n, c, h, w = x.shape
            rows = x.transpose(1, 2).reshape(n, h, c * w)
            return self.out(self.cell(rows)[0][:, -1])

    return Net()


def transformer_net(config, params0):
    """nn.Embedding + a positional nn.Parameter + `blocks` nn.TransformerEncoderLayer
    (norm_first=True, batch_first=True, dropout 0, our activation, a causal mask) + a final
    nn.LayerNorm + nn.Linear, holding the run's initial parameters (in_proj_weight is
    [Wq; Wk; Wv] transposed: nn.MultiheadAttention computes x W^T + b and splits the heads as
    ours do, in consecutive slices of the width)."""
    import torch
    from torch import nn

    def t(a):
        return torch.from_numpy(np.array(a, np.float32))  # a copy: writable and contiguous

    d, blocks = config["dim"], config["blocks"]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(config["vocab_size"], d)
            self.pos = nn.Parameter(t(params0["W_pos"]))
            self.layers = nn.ModuleList(
                nn.TransformerEncoderLayer(d, config["heads"], dim_feedforward=config["ffn"], dropout=0.0,
                                           activation=config["activation"], layer_norm_eps=1e-5, batch_first=True,
                                           norm_first=True) for _ in range(blocks))
            self.norm = nn.LayerNorm(d, eps=1e-5)
            self.out = nn.Linear(d, config["vocab_size"])
            with torch.no_grad():
                self.embed.weight.copy_(t(params0["W_embed"]))
                for i, layer in enumerate(self.layers):
                    p = {k: params0[f"{k}_{i}"] for k in ("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo", "W1", "b1",
                                                          "W2", "b2", "ln1_gamma", "ln1_beta", "ln2_gamma", "ln2_beta")}
                    layer.self_attn.in_proj_weight.copy_(t(np.concatenate([p["Wq"], p["Wk"], p["Wv"]], axis=1).T))
                    layer.self_attn.in_proj_bias.copy_(t(np.concatenate([p["bq"], p["bk"], p["bv"]])))
                    layer.self_attn.out_proj.weight.copy_(t(p["Wo"].T))
                    layer.self_attn.out_proj.bias.copy_(t(p["bo"]))
                    layer.linear1.weight.copy_(t(p["W1"].T))
                    layer.linear1.bias.copy_(t(p["b1"]))
                    layer.linear2.weight.copy_(t(p["W2"].T))
                    layer.linear2.bias.copy_(t(p["b2"]))
                    for norm, which in ((layer.norm1, "ln1"), (layer.norm2, "ln2")):
                        norm.weight.copy_(t(p[f"{which}_gamma"]))
                        norm.bias.copy_(t(p[f"{which}_beta"]))
                self.norm.weight.copy_(t(params0["lnf_gamma"]))
                self.norm.bias.copy_(t(params0["lnf_beta"]))
            _linear_into_torch(self.out, params0["W_vocab"], params0["b_vocab"])

        def forward(self, x):
            steps = x.shape[1]
            mask = nn.Transformer.generate_square_subsequent_mask(steps)
            h = self.embed(x) + self.pos[:steps]
            for layer in self.layers:
                h = layer(h, src_mask=mask, is_causal=True)
            return self.out(self.norm(h))

    return Net()


def torch_net(name, config, params0):
    """The peer of model `name` (char_lm, row_lstm or transformer_lm) with `config`, holding the
    parameters params0 (a dict of NumPy arrays, the model's own names)."""
    return transformer_net(config, params0) if name == "transformer_lm" else recurrent_net(name, config, params0)


def training_step(net, learning_rate, clip_norm=None):
    """`step(x, y) -> loss` (a float tensor, before the update): one optimiser step of `net` as
    the peer trains, zero_grad, the loss (CrossEntropyLoss(ignore_index=-1) over every scored
    target), backward, `clip_grad_norm_` when clip_norm is set, `torch.optim.Adam` (betas 0.9,
    0.999, eps 1e-8). The benchmark times this same step (`experiments/bench/steps.py`)."""
    import torch
    from torch import nn

    loss_fn = nn.CrossEntropyLoss(ignore_index=-1)
    trained = [q for q in net.parameters() if q.requires_grad]
    opt = torch.optim.Adam(trained, lr=learning_rate, betas=(0.9, 0.999), eps=1e-8)

    def step(x, y):
        opt.zero_grad()
        scores = net(x)
        loss = loss_fn(scores.reshape(-1, scores.shape[-1]), y.reshape(-1))
        loss.backward()
        if clip_norm:
            nn.utils.clip_grad_norm_(trained, clip_norm)
        opt.step()
        return loss.detach()

    return step


def peer(run_dir):
    import torch
    from torch import nn

    torch.manual_seed(0)
    metrics = runs.read_metrics(run_dir, needs=("model", "model_config", "train_config", "data", "final", "seed"))
    model = build_model(metrics["model"], metrics["model_config"])
    cfg = metrics["train_config"]
    config = model.config
    if cfg["optimizer"] != "adam" or cfg["decay"] != 1.0 or cfg["batch_size"] is None:
        raise ValueError(f"{run_dir}: the peer repeats Adam minibatch runs without decay; this run: {cfg}")
    params0 = {k: np.asarray(v) for k, v in model.init(jax.random.key(metrics["seed"])).items()}
    if model.token_inputs:
        prepared, _ = char_lm.prepare(metrics["data"]["spec"])
    else:
        prepared = image_data.prepare(metrics["data"]["spec"], "conv", seed=metrics["seed"])
    net = torch_net(metrics["model"], config, params0)
    as_x = (lambda a: torch.from_numpy(np.asarray(a, np.int64))) if model.token_inputs else (
        lambda a: torch.from_numpy(np.asarray(a, np.float32)))
    x_tr, y_tr = as_x(prepared.x_train), torch.from_numpy(np.asarray(prepared.y_train, np.int64))
    step = training_step(net, cfg["learning_rate"], cfg.get("clip_norm"))
    key = jax.random.key(cfg["seed"])
    n = len(prepared.x_train)
    steps = metrics["steps_done"]
    indices = np.asarray(jax.vmap(lambda t: sample_batch_indices(key, t, n, cfg["batch_size"]))(np.arange(steps)))
    t0 = time.perf_counter()
    for idx in indices:
        idx = torch.from_numpy(idx.astype(np.int64))
        step(x_tr[idx], y_tr[idx])
    train_s = time.perf_counter() - t0

    result = {"steps": int(steps), "train_time_s": train_s, "torch": torch.__version__}
    with torch.no_grad():
        for part, x, y in (("train", prepared.x_train, prepared.y_train), ("val", prepared.x_val, prepared.y_val),
                           ("test", prepared.x_test, prepared.y_test)):
            scores = torch.cat([net(as_x(x[i:i + 1000])) for i in range(0, len(x), 1000)])
            y = torch.from_numpy(np.asarray(y, np.int64))
            pred = scores.argmax(-1)
            scored = y >= 0
            result[f"{part}_acc"] = float((pred == y)[scored].float().mean())
            if model.token_inputs:
                nll = nn.functional.cross_entropy(scores.reshape(-1, scores.shape[-1]), y.reshape(-1),
                                                  ignore_index=-1, reduction="mean")
                result[f"{part}_loss_per_char"] = float(nll)
                result[f"{part}_perplexity"] = math.exp(float(nll))
    (Path(run_dir) / "torch_peer.json").write_text(json.dumps(result, indent=1))
    return metrics, result


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    for run_dir in argv:
        metrics, result = peer(run_dir)
        ours = metrics["final"]
        keys = ["test_loss_per_char", "test_perplexity", "val_loss_per_char", "test_acc"] \
            if metrics["model"] in ("char_lm", "transformer_lm") else ["test_acc", "val_acc", "train_acc"]
        name = "nn.TransformerEncoderLayer" if metrics["model"] == "transformer_lm" else \
            f"nn.{TORCH_CELLS[metrics['model_config']['cell']][0]}"
        print(f"{run_dir} ({metrics['model']}, {result['steps']} steps; PyTorch {result['train_time_s']:.1f} s "
              f"training, ours {metrics['train_time_s']:.1f} s with compilation and reports):")
        for k in keys:
            print(f"  {k:20s} ours {ours[k]:.4f}   {name} {result[k]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
