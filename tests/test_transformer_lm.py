"""The decoder-only transformer language model (`transformer_lm`) at tiny sizes: its three
gradient modes (manual, autodiff, custom_vjp) agree in float64 with each other and with the
NumPy float64 twin with two blocks, whose gradient agrees with central
differences; the scores are causal; the
experiment trains it (the loss goes down), `jaxnets sample` and the PyTorch peer
(`nn.TransformerEncoderLayer`, norm_first, causal mask) run on it. Its MODEL_SPECS entry puts
it in the five-way suite as well (tests/test_models_equivalence.py, tests/test_jit_vmap.py)."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import cli
from jaxnets.grads import gradient
from jaxnets.models import MODELS, transformer_lm
from jaxnets.models.transformer import attention_maps
from reference_numpy import models as npm
from reference_numpy.numerical import max_rel_error, numerical_gradient

CONFIG = {"vocab_size": 6, "seq_len": 5, "dim": 8, "heads": 2, "blocks": 2, "ffn": 12, "activation": "gelu"}
TOL = 1e-10  # float64: the modes and the twin differ by summation order only
FD_TOL = 1e-6  # analytic vs central differences (h = 1e-5) of the float64 twin


def _case(seed=0, **config):
    config = {**CONFIG, **config}
    rng = np.random.default_rng(seed)
    params = npm.MODELS["transformer_lm"](**config).init(rng)
    x = rng.integers(0, config["vocab_size"], (3, config["seq_len"])).astype(np.int32)
    y = rng.integers(-1, config["vocab_size"], (3, config["seq_len"])).astype(np.int32)
    y[0, 0] = 1  # at least one target
    return config, params, x, y


def _max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def test_three_modes_and_the_numpy_twin_agree_in_float64():
    config, params, x, y = _case()
    np_loss, np_grads = npm.MODELS["transformer_lm"](**config).loss_and_grads(params, x, y)
    model = MODELS["transformer_lm"](**config)
    jparams = {k: jnp.asarray(v) for k, v in params.items()}
    assert {k: v.shape for k, v in model.init(jax.random.key(0)).items()} == {k: v.shape for k, v in params.items()}
    for mode in ("manual", "autodiff", "custom_vjp"):
        loss, grads, state = jax.jit(gradient(model, mode))(jparams, {}, x, y, None)
        assert state == {} and set(grads) == set(params)
        assert abs(float(loss) - np_loss) <= TOL, mode
        for k in params:
            scale = max(1.0, float(np.max(np.abs(np_grads[k]))))
            assert _max_diff(grads[k], np_grads[k]) <= TOL * scale, f"{mode} d{k}"


def test_numpy_twin_gradient_matches_central_differences():
    config, params, x, y = _case(seed=1, blocks=1)
    twin = npm.MODELS["transformer_lm"](**config)
    _, grads = twin.loss_and_grads(params, x, y)
    for k, p in params.items():
        num = numerical_gradient(lambda v: twin.loss({**params, k: v}, x, y), p.copy(), h=1e-5)
        err, where = max_rel_error(grads[k], num)
        assert err <= FD_TOL, f"d{k}: max rel error {err:.3g} at {where}"


def test_scores_are_causal_and_positions_are_checked():
    config, params, x, _ = _case(seed=2)
    model = transformer_lm(**config)
    scores = jax.jit(model.scores)
    full = scores(params, x)
    changed = x.copy()
    changed[:, 3:] = (changed[:, 3:] + 1) % config["vocab_size"]
    np.testing.assert_allclose(scores(params, changed)[:, :3], full[:, :3], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(scores(params, x[:, :2]), full[:, :2], rtol=1e-12, atol=1e-12)
    maps = np.asarray(attention_maps(model, params, x))
    assert maps.shape == (2, 3, 2, 5, 5)
    np.testing.assert_allclose(maps.sum(-1), 1, rtol=1e-12)
    assert np.all(maps[..., np.triu_indices(5, 1)[0], np.triu_indices(5, 1)[1]] == 0)
    with pytest.raises(ValueError, match=r"t <= seq_len = 5 \(the positions it has embeddings for\), got shape \(3, 6\)"):
        model.scores(params, np.zeros((3, 6), np.int32))
    with pytest.raises(ValueError, match="dim must be divisible by heads, got dim=8, heads=3"):
        transformer_lm(dim=8, heads=3)


@pytest.fixture(scope="module")
def tf_run(tmp_path_factory):
    """`jaxnets train transformer_lm` at a tiny size: its run folder."""
    out = tmp_path_factory.mktemp("tf") / "runs"
    assert cli.main(["train", "transformer_lm", "--iterations", "40", "--dim", "8", "--heads", "2", "--blocks", "1",
                     "--ffn", "8", "--learning-rate", "0.02", "--batch-size", "16", "--out", str(out),
                     "--no-progress"]) == 0
    return out / "transformer_lm"


def test_experiment_trains_and_writes_its_picture_and_samples(tf_run, capsys):
    metrics = json.loads((tf_run / "metrics.json").read_text())
    loss, final = metrics["history"]["loss"], metrics["final"]
    assert np.mean(loss[-5:]) < 0.85 * np.mean(loss[:5])  # from ln 27 = 3.3 nats towards the names' ~2
    assert np.exp(final["test_loss_per_char"]) == pytest.approx(final["test_perplexity"])
    assert (tf_run / "attention_map.png").stat().st_size > 1000
    assert len((tf_run / "samples.txt").read_text().splitlines()) == 20
    capsys.readouterr()
    assert cli.main(["sample", str(tf_run), "--prompt", "ma", "--num", "2"]) == 0
    names = capsys.readouterr().out.split()
    assert len(names) == 2 and all(n.startswith("MA") for n in names)


def test_torch_peer_starts_from_the_runs_parameters_and_batches(tf_run, capsys):
    """3 steps of the nn.TransformerEncoderLayer peer from our initial parameters on our
    batches end where ours do, up to float32 (skipped without torch)."""
    torch = pytest.importorskip("torch")
    from experiments import sequence_peers

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: a second thread only waits, and on a busy machine spins for long
    try:
        assert sequence_peers.main([str(tf_run)]) == 0
    finally:
        torch.set_num_threads(threads)
    ours = json.loads((tf_run / "metrics.json").read_text())["final"]
    theirs = json.loads((tf_run / "torch_peer.json").read_text())
    for part in ("train", "val", "test"):
        assert theirs[f"{part}_loss_per_char"] == pytest.approx(ours[f"{part}_loss_per_char"], abs=1e-4), part
    assert "nn.TransformerEncoderLayer" in capsys.readouterr().out
