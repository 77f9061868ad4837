"""The sequence models in training: token inputs and per-step targets through the one input
check, reports per target, gradient clipping, exact resume, sampling, and the two experiments
and `jaxnets sample` end to end at tiny sizes. One tiny language model for the module."""
import json

import jax
import numpy as np
import pytest

from experiments import cli
from jaxnets.data import DataError, check_arrays, encode
from jaxnets.models import char_lm
from jaxnets.models.sequence import sample, token_nll
from jaxnets.training import TrainConfig, accuracy, make_optimizer, train

ALPHABET = "ABCDE"
WORDS = ["ABBA", "BAD", "CAB", "DEAD", "ACE", "BEAD", "DAB", "CEDE", "BEE", "ADD", "EBB", "DECADE"]
SEQ = 7
MODEL = char_lm(vocab_size=6, seq_len=SEQ, embed=3, hidden=5, cell="lstm")
PARAMS = MODEL.init(jax.random.key(0))
X, Y = encode(WORDS, ALPHABET, SEQ)
DATA = (X[:8], Y[:8], X[8:], Y[8:])
CONFIG = TrainConfig(learning_rate=0.05, iterations=12, batch_size=4, optimizer="adam", clip_norm=1.0,
                     report_every=4, dtype="float64")


def test_language_model_trains_and_resumes_exactly(tmp_path):
    full = train(MODEL, PARAMS, DATA, CONFIG, progress=False)
    loss = full.history["loss"]
    assert np.mean(loss[-4:]) < np.mean(loss[:4])
    # reports are per target: correct next characters / characters (+ the end) of the set
    assert full.history["report_step"] == [0, 4, 8, 12]
    assert full.history["val_acc"][-1] == accuracy(MODEL, full.params, X[8:], Y[8:])
    n_targets = int(np.sum(Y[8:] >= 0))
    assert n_targets == sum(len(w) + 1 for w in WORDS[8:])
    assert full.history["val_acc"][-1] * n_targets == pytest.approx(round(full.history["val_acc"][-1] * n_targets))
    stem = tmp_path / "ckpt"
    train(MODEL, PARAMS, DATA, CONFIG.replace(iterations=5), progress=False, checkpoint_path=stem)
    resumed = train(MODEL, None, DATA, CONFIG, progress=False, resume=stem)
    for k in full.params:
        np.testing.assert_array_equal(np.asarray(full.params[k]), np.asarray(resumed.params[k]), err_msg=k)
    with pytest.raises(ValueError, match="clip_norm=1.0, this run None"):
        train(MODEL, None, DATA, CONFIG.replace(clip_norm=None), progress=False, resume=stem)


def test_loss_is_per_token_and_matches_the_summed_likelihood():
    value, _ = MODEL.loss(PARAMS, {}, X, Y)
    total, count = token_nll(MODEL, PARAMS, X, Y, batch=5)
    assert count == int(np.sum(Y >= 0))
    np.testing.assert_allclose(float(value), total / count, rtol=1e-12)


def test_clip_norm_scales_the_gradient_to_the_global_norm():
    grads = {"a": np.full(3, 4.0), "b": np.full(1, 3.0)}  # global norm sqrt(57)
    params = {k: np.zeros_like(v) for k, v in grads.items()}
    opt = make_optimizer(TrainConfig(learning_rate=1.0, iterations=1, clip_norm=2.0), 10)
    updates, _ = opt.update(grads, opt.init(params), params)
    assert np.sqrt(sum(np.sum(np.square(u)) for u in updates.values())) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="clip_norm must be a positive finite number"):
        TrainConfig(learning_rate=1.0, iterations=1, clip_norm=0.0).check()


@pytest.mark.parametrize("x, y, problem", [
    (X.astype(np.float32), Y, "x must hold integer token ids, got dtype float32"),
    (np.where(X == 5, 6, X), Y, r"token ids must lie in 0..5; x\[3, 2\] = 6 \(10 out of range\)"),
    (X, np.where(Y == 0, -2, Y), r"labels must lie in -1..5 \(-1: no target\); y\[0, 4\] = -2"),
    (X, Y[:, :4], r"labels y must have shape \(N, \*\(7,\)\) = \(12, 7\), got \(12, 4\)"),
    (X[:, :4], Y, r"x has feature shape \(4,\), expected \(7,\)"),
])
def test_bad_token_data_is_refused(x, y, problem):
    with pytest.raises(DataError, match=problem):
        check_arrays(x, y, feature_shape=(SEQ,), num_classes=6, tokens=True, label_shape=(SEQ,), name="train")
    with pytest.raises(DataError, match=problem):
        train(MODEL, PARAMS, (x, y), CONFIG, progress=False)


def test_sampling_is_reproducible_and_checked():
    key = jax.random.key(3)
    a = sample(MODEL, PARAMS, key, prefix=[1, 2], temperature=0.7)
    assert a == sample(MODEL, PARAMS, key, prefix=[1, 2], temperature=0.7)
    assert len(a) <= SEQ - 3 and all(1 <= t <= 5 for t in a)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        sample(MODEL, PARAMS, key, temperature=0.0)
    with pytest.raises(ValueError, match=r"prefix tokens must lie in 1..5"):
        sample(MODEL, PARAMS, key, prefix=[0])


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """`jaxnets train char_lm` at a tiny size: its run folder."""
    out = tmp_path_factory.mktemp("lm") / "runs"
    assert cli.main(["train", "char_lm", "--iterations", "3", "--hidden", "4", "--embed", "2", "--out", str(out),
                     "--no-progress"]) == 0
    return out / "char_lm_lstm"


def test_char_lm_experiment_and_sample_command(lm_run, tmp_path, capsys):
    run = lm_run
    final = json.loads((run / "metrics.json").read_text())["final"]
    for part in ("train", "val", "test"):
        assert np.exp(final[f"{part}_loss_per_char"]) == pytest.approx(final[f"{part}_perplexity"])
    assert 20 < final["test_perplexity"] < 28  # ~ uniform over 27 tokens after 3 steps
    assert len((run / "samples.txt").read_text().splitlines()) == 20
    capsys.readouterr()
    assert cli.main(["sample", str(run), "--prompt", "ma", "--num", "3", "--temperature", "0.5"]) == 0
    names = capsys.readouterr().out.split()
    assert len(names) == 3 and all(n.startswith("MA") for n in names)
    assert cli.main(["sample", str(run), "--prompt", "m4"]) == 2
    assert "'4' is not in the run's alphabet" in capsys.readouterr().err
    assert cli.main(["sample", str(tmp_path)]) == 2
    assert "not a run folder, metrics.json is missing" in capsys.readouterr().err


@pytest.mark.parametrize("cell,module", [("lstm", "nn.LSTM"), ("gru", "nn.GRU"), ("rnn", "nn.RNN")])
def test_torch_peer_starts_from_the_runs_parameters_and_batches(cell, module, lm_run, tmp_path, capsys):
    """The optional PyTorch peer (torch is not a dependency: skipped without it): 3 steps from
    the same initial parameters on the same batches end where ours do, up to float32 — for
    every cell (the gate orders and the GRU's second bias carried over)."""
    pytest.importorskip("torch")
    from experiments import sequence_peers

    run = lm_run
    if cell != "lstm":
        assert cli.main(["train", "char_lm", "--cell", cell, "--iterations", "3", "--hidden", "4", "--embed", "2",
                         "--out", str(tmp_path), "--no-progress"]) == 0
        run = tmp_path / f"char_lm_{cell}"
    capsys.readouterr()
    assert sequence_peers.main([str(run)]) == 0
    ours = json.loads((run / "metrics.json").read_text())["final"]
    theirs = json.loads((run / "torch_peer.json").read_text())
    for part in ("train", "val", "test"):
        assert theirs[f"{part}_loss_per_char"] == pytest.approx(ours[f"{part}_loss_per_char"], abs=1e-5), part
    assert module in capsys.readouterr().out


def test_reproduce_table_shows_the_peer_beside_ours(lm_run, tmp_path):
    """A run folder holding torch_peer.json (written by experiments.sequence_peers) gets the
    peer's numbers in the results table's reference column."""
    import shutil

    from experiments import reproduce

    run = tmp_path / "runs" / lm_run.name
    shutil.copytree(lm_run, run)
    (run / "torch_peer.json").write_text(json.dumps({"test_loss_per_char": 1.5, "val_loss_per_char": 1.25,
                                                     "test_acc": 0.5, "val_acc": 0.5}))
    row = next(line for line in reproduce.results_table(run.parent).splitlines() if lm_run.name in line)
    assert "PyTorch peer (nn.LSTM): test 1.500 nats/char, val 1.250" in row
