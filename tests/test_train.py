"""Training loop: every gradient mode learns and they agree, 002's learning-rate schedule,
determinism, checkpoints and exact resumption, divergence handling, with-replacement
minibatches and input validation. Tiny models and synthetic data; few distinct jit shapes."""
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnets.grads import MODES
from jaxnets.models import Model, fc_net, occupancy_net, two_layer_net
from jaxnets.training import checkpoint as ckpt
from jaxnets.training import (
    TrainConfig,
    accuracy,
    iterations_per_epoch,
    learning_rate_schedule,
    make_optimizer,
    sample_batch_indices,
    train,
)

MODE_AGREEMENT_TOL = 1e-5  # float32 params after 50 full-batch steps, manual vs autodiff

# One model object for the whole module so the jitted training chunks are reused.
MODEL = two_layer_net(input_size=20, hidden_size=8, num_classes=3, std=0.1)
FULL = {"learning_rate": 0.5, "iterations": 50, "report_every": 10}
MINI = {"learning_rate": 0.5, "decay": 0.9, "batch_size": 16, "report_every": 6}


def make_data(seed=0, n_train=96, n_val=48):
    rng = np.random.default_rng(seed)
    w_true = rng.standard_normal((20, 3))
    x = rng.standard_normal((n_train + n_val, 20)).astype(np.float32)
    y = np.argmax(x @ w_true, axis=1).astype(np.int32)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


DATA = make_data()
PARAMS = MODEL.init(jax.random.key(0))


def run(config, params=PARAMS, data=DATA, **kwargs):
    kwargs.setdefault("progress", False)
    return train(MODEL, params, data, config, **kwargs)


def assert_same_params(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


@pytest.mark.parametrize("mode", MODES)
def test_loss_decreases_in_every_mode(mode):
    result = run(TrainConfig(mode=mode, **FULL))
    loss = result.history["loss"]
    assert result.diverged is None and result.steps_done == 50 and len(loss) == 50
    assert loss[-1] < 0.3 * loss[0], f"{mode}: loss {loss[0]:.4f} -> {loss[-1]:.4f}"
    assert result.history["train_acc"][-1] > result.history["train_acc"][0]
    assert result.history["report_step"] == [0, 10, 20, 30, 40, 50]
    assert len(result.history["val_acc"]) == 6


@pytest.mark.parametrize("other", ["autodiff", "custom_vjp"])
def test_manual_and_jax_grad_training_agree(other):
    with jax.default_matmul_precision("highest"):  # float32 all the way, no TF32/bf16 passes
        manual = run(TrainConfig(mode="manual", **FULL))
        theirs = run(TrainConfig(mode=other, **FULL))
    assert manual.params["W1"].dtype == jnp.float32
    for k in manual.params:
        err = float(jnp.max(jnp.abs(manual.params[k] - theirs.params[k])))
        assert err < MODE_AGREEMENT_TOL, f"manual vs {other}: param {k} max |diff| {err:.2e}"
    np.testing.assert_allclose(manual.history["loss"], theirs.history["loss"], rtol=1e-5, atol=1e-6)


def lr_002(learning_rate, learning_rate_decay, num_train, batch_size, num_iters):
    """The learning rate each step of 002's `train` uses, transcribed from the document."""
    iterations_per_epoch = max(num_train / batch_size, 1)
    rates = []
    for it in range(num_iters):
        rates.append(learning_rate)  # step `it`'s SGD update uses this rate
        if it % iterations_per_epoch == 0:
            learning_rate *= learning_rate_decay
    return rates


@pytest.mark.parametrize("num_train, batch_size", [(1000, 50), (50000, 200), (30, 10), (10, 50)])
def test_lr_schedule_decays_per_epoch_as_in_002(num_train, batch_size):
    ipe = iterations_per_epoch(num_train, batch_size)
    schedule = learning_rate_schedule(1e-3, 0.95, ipe)
    steps = 3 * ipe + 5
    ours = [float(schedule(t)) for t in range(steps)]
    np.testing.assert_allclose(ours, lr_002(1e-3, 0.95, num_train, batch_size, steps), rtol=1e-6)
    assert learning_rate_schedule(0.1, 1.0, ipe) == 0.1
    assert iterations_per_epoch(41000, None) == 1
    # optax's bare staircase decay is the same sequence one step late: 002 decays right after step 0.
    bare = optax.exponential_decay(1e-3, transition_steps=ipe, decay_rate=0.95, staircase=True)
    np.testing.assert_allclose(ours[1:], [float(bare(t)) * 0.95 for t in range(steps - 1)], rtol=1e-6)


def test_history_records_the_rate_of_each_report():
    result = run(TrainConfig(**MINI, iterations=20))
    steps = result.history["report_step"]
    assert steps == [0, 6, 12, 18, 20]
    np.testing.assert_allclose(result.history["lr"], [0.5 * 0.9 ** math.ceil(t / 6) for t in steps], rtol=1e-6)


def test_full_batch_step_is_gradient_descent_on_all_rows():
    one = run(TrainConfig(**FULL).replace(iterations=1))
    loss, grads, _ = MODEL.loss_and_grads(jax.tree.map(lambda a: a.astype(jnp.float32), PARAMS), {},
                                          jnp.asarray(DATA[0]), jnp.asarray(DATA[1]))
    assert math.isclose(one.history["loss"][0], float(loss), rel_tol=1e-6)
    for name, g in grads.items():
        np.testing.assert_allclose(one.params[name], PARAMS[name] - 0.5 * g, rtol=1e-5, atol=1e-7)


def test_train_config_round_trips_through_json():
    config = TrainConfig(mode="custom_vjp", learning_rate=1e-3, decay=0.99, iterations=10, batch_size=200)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({**config.to_dict(), "momentum": 0.9})
    with pytest.raises(TypeError):
        TrainConfig(learning_rate=0.1)  # iterations is required


def test_each_step_is_sgd_on_its_own_batch_with_the_002_rate():
    """Update k is params_k - lr_k * grad(params_k; batch k), batch k drawn from
    fold_in(key(seed), k) and lr_k = lr * decay ** ceil(k / epoch) as in 002."""
    k, seed = 13, 5
    before = run(TrainConfig(**MINI, iterations=k, seed=seed))
    after = run(TrainConfig(**MINI, iterations=k + 1, seed=seed))
    assert int(after.opt_state[-1].count) == k + 1  # optax's schedule counter travels along
    idx = sample_batch_indices(jax.random.key(seed), k, 96, 16)
    xb, yb = jnp.asarray(DATA[0])[idx], jnp.asarray(DATA[1])[idx]
    loss, grads, _ = MODEL.loss_and_grads(before.params, {}, xb, yb)
    assert math.isclose(after.history["loss"][k], float(loss), rel_tol=1e-6)
    rate = 0.5 * 0.9 ** math.ceil(k / iterations_per_epoch(96, 16))
    for name, g in grads.items():
        np.testing.assert_allclose(after.params[name], before.params[name] - rate * g, rtol=1e-5, atol=1e-7)


def test_same_seed_gives_identical_history_and_params():
    a = run(TrainConfig(**MINI, iterations=30, seed=3))
    b = run(TrainConfig(**MINI, iterations=30, seed=3))
    c = run(TrainConfig(**MINI, iterations=30, seed=4))
    assert a.history == b.history
    assert_same_params(a.params, b.params)
    assert a.history["loss"] != c.history["loss"]


def test_checkpoint_round_trip(tmp_path):
    result = run(TrainConfig(**MINI, iterations=12), checkpoint_path=tmp_path / "run" / "ckpt")
    loaded = ckpt.load_checkpoint(tmp_path / "run" / "ckpt.json")  # suffix optional
    assert loaded.step == 12 and loaded.model_name == "two_layer"
    assert loaded.model_config == ckpt.jsonable(MODEL.config)
    assert TrainConfig.from_dict(loaded.train_config) == TrainConfig(**MINI, iterations=12)
    assert loaded.history == result.history
    assert_same_params(loaded.params, result.params)
    template = jax.tree.map(jnp.zeros_like, result.opt_state)
    restored = ckpt.restore_opt_state(loaded, template)
    assert jax.tree.structure(restored) == jax.tree.structure(result.opt_state)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(result.opt_state), strict=True):
        assert a.dtype == b.dtype and jnp.array_equal(a, b)
    rebuilt = ckpt.model_from_checkpoint(loaded)
    assert rebuilt.name == MODEL.name and rebuilt.config == MODEL.config
    # Plain files: JSON metadata and an npz of arrays named by key path, readable without pickle.
    meta = json.loads((tmp_path / "run" / "ckpt.json").read_text())
    assert meta["step"] == 12 and meta["train_config"]["batch_size"] == 16
    with np.load(tmp_path / "run" / "ckpt.npz", allow_pickle=False) as npz:
        assert {"params['W1']", "params['b2']", "step"} <= set(npz.files)
        assert any(name.startswith("opt_state") and name.endswith(".count") for name in npz.files)
        np.testing.assert_array_equal(npz["params['W1']"], np.asarray(result.params["W1"]))


def test_loading_a_missing_or_mismatched_checkpoint_raises(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint"):
        ckpt.load_checkpoint(tmp_path / "nothing")
    run(TrainConfig(**FULL, decay=1.0), checkpoint_path=tmp_path / "ckpt")  # constant rate: no counter
    loaded = ckpt.load_checkpoint(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="optimiser state"):
        ckpt.restore_opt_state(loaded, make_optimizer(TrainConfig(**MINI, iterations=60), 96).init(PARAMS))
    with pytest.raises(ValueError, match="decay"):
        run(TrainConfig(**FULL, decay=0.5).replace(iterations=60), params=None, resume=tmp_path / "ckpt")


@pytest.mark.parametrize("kind", ["full_batch", "minibatch"])
def test_resume_reaches_the_same_params_as_an_uninterrupted_run(tmp_path, kind):
    base = FULL if kind == "full_batch" else MINI
    base = {k: v for k, v in base.items() if k != "iterations"}
    whole = run(TrainConfig(**base, iterations=40))
    first = run(TrainConfig(**base, iterations=21), checkpoint_path=tmp_path / "ckpt")
    resumed = run(TrainConfig(**base, iterations=40), params=None, resume=tmp_path / "ckpt")
    assert first.steps_done == 21 and resumed.steps_done == 40
    assert_same_params(resumed.params, whole.params)
    assert resumed.history["loss"] == whole.history["loss"]
    for a, b in zip(jax.tree.leaves(resumed.opt_state), jax.tree.leaves(whole.opt_state), strict=True):
        assert jnp.array_equal(a, b)


BN_MODEL = fc_net((8, 6), input_size=20, num_classes=3, norm="batchnorm", dropout=0.3, weight_scale=0.3)


def test_ctrl_c_stops_after_a_chunk_saves_it_and_the_run_resumes_exactly(tmp_path, monkeypatch):
    """A real SIGINT during training: the chunk in flight finishes, its checkpoint is written
    (no --checkpoint-every needed) and `Interrupted` (a KeyboardInterrupt) is raised; resuming
    ends at the uninterrupted run's parameters and history."""
    import importlib
    import signal

    from jaxnets.training import Interrupted

    train_mod = importlib.import_module("jaxnets.training.train")  # the module, not the function

    monkeypatch.setattr(train_mod, "MAX_CHUNK", 4)  # chunks of 4 steps
    config = TrainConfig(**MINI, iterations=20)
    whole = run(config)
    asked = []
    real = train_mod.run_chunks

    def run_chunks(*args):  # Ctrl-C as the third chunk is about to start
        stop = args[-1]

        def stop_after_two():
            asked.append(1)
            if len(asked) == 3:
                signal.raise_signal(signal.SIGINT)
            return stop()

        return real(*args[:-1], stop_after_two)

    monkeypatch.setattr(train_mod, "run_chunks", run_chunks)
    terminal = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (not ignored)
    try:
        with pytest.raises(Interrupted) as info:
            run(config, checkpoint_path=tmp_path / "ck")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    finally:
        signal.signal(signal.SIGINT, terminal)
    monkeypatch.setattr(train_mod, "run_chunks", real)
    stopped = info.value
    assert isinstance(stopped, KeyboardInterrupt) and stopped.signum == signal.SIGINT
    assert stopped.step in (8, 12) and stopped.total == 20 and stopped.checkpoint == tmp_path / "ck"
    assert f"interrupted by SIGINT at step {stopped.step} of 20; checkpoint saved" in str(stopped)
    assert ckpt.load_checkpoint(tmp_path / "ck").step == stopped.step
    resumed = run(config, params=None, resume=tmp_path / "ck")
    assert_same_params(resumed.params, whole.params)
    assert resumed.history == whole.history


def test_an_ignored_signal_stays_ignored_during_training():
    """A shell starts background jobs with SIGINT ignored; training must not take it back."""
    import signal

    from jaxnets.training.interrupt import stop_requests

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stop_requests() as stop:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # SIGTERM is handled
            signal.raise_signal(signal.SIGINT)
            assert not stop()
    finally:
        signal.signal(signal.SIGINT, before)


def test_batchnorm_dropout_model_trains_carries_its_state_and_resumes_exactly(tmp_path):
    """Running statistics threaded through the steps (and the checkpoint), dropout masks drawn
    from (seed, step), a hand-written optimizer: an interrupted run ends where an
    uninterrupted one ends, state included."""
    params = BN_MODEL.init(jax.random.key(0))
    config = TrainConfig(learning_rate=0.01, batch_size=16, report_every=6, iterations=30, optimizer="adam")
    whole = train(BN_MODEL, params, DATA, config, progress=False)
    assert sorted(whole.model_state) == ["running_mean1", "running_mean2", "running_var1", "running_var2"]
    assert whole.history["train_acc"][-1] > whole.history["train_acc"][0]
    fresh = BN_MODEL.init_state()
    assert not np.allclose(whole.model_state["running_mean1"], fresh["running_mean1"])  # it moved
    train(BN_MODEL, params, DATA, config.replace(iterations=13), progress=False, checkpoint_path=tmp_path / "ckpt")
    assert sorted(ckpt.load_checkpoint(tmp_path / "ckpt").model_state) == sorted(whole.model_state)
    resumed = train(BN_MODEL, None, DATA, config, progress=False, resume=tmp_path / "ckpt")
    assert_same_params(resumed.params, whole.params)
    assert_same_params(resumed.model_state, whole.model_state)
    assert resumed.history["loss"] == whole.history["loss"]
    with pytest.raises(ValueError, match="optimizer"):
        train(BN_MODEL, None, DATA, config.replace(optimizer="momentum"), progress=False, resume=tmp_path / "ckpt")


def test_every_mode_trains_a_stateful_stochastic_model_alike():
    """Batch statistics, running averages and dropout masks are the same in every mode."""
    params = BN_MODEL.init(jax.random.key(1))
    config = TrainConfig(learning_rate=0.05, batch_size=16, iterations=10, dtype="float64")
    runs = {m: train(BN_MODEL, params, DATA, config.replace(mode=m), progress=False) for m in MODES}
    for m in ("autodiff", "custom_vjp"):
        for tree in ("params", "model_state"):
            a, b = getattr(runs["manual"], tree), getattr(runs[m], tree)
            for k in a:
                np.testing.assert_allclose(np.asarray(b[k]), np.asarray(a[k]), rtol=1e-10, atol=1e-12, err_msg=f"{m} {k}")


def test_unknown_optimizer_or_hyperparameter_is_refused():
    with pytest.raises(ValueError, match="unknown optimizer 'nesterov'"):
        run(TrainConfig(**FULL, optimizer="nesterov"))
    with pytest.raises(ValueError, match="does not take beta1"):
        run(TrainConfig(**FULL, optimizer="momentum", optimizer_args={"beta1": 0.9}))


def test_resume_with_different_hyperparameters_is_refused(tmp_path):
    run(TrainConfig(**MINI, iterations=6), checkpoint_path=tmp_path / "ckpt")
    with pytest.raises(ValueError, match="learning_rate"):
        run(TrainConfig(**{**MINI, "learning_rate": 0.1}, iterations=12), resume=tmp_path / "ckpt")


def test_periodic_checkpoints_are_written_at_their_steps(tmp_path, monkeypatch):
    saved = []
    real_save = ckpt.save_checkpoint
    monkeypatch.setattr(ckpt, "save_checkpoint", lambda path, **kw: saved.append(kw["step"]) or real_save(path, **kw))
    result = run(TrainConfig(**FULL), checkpoint_path=tmp_path / "ckpt", checkpoint_every=20)
    assert saved == [20, 40, 50]
    assert ckpt.load_checkpoint(tmp_path / "ckpt").step == 50
    assert result.history["report_step"] == [0, 10, 20, 30, 40, 50]  # checkpoints do not add reports


# A model whose loss (w - 10)^2 + log(6 - w) becomes NaN once gradient descent from w = 0
# pushes w past 6: a planted divergence at a step computable by hand.
def _barrier_loss(params, x, y):
    w = params["w"][0]
    return (w - 10.0) ** 2 + jnp.log(6.0 - w) + 0.0 * jnp.sum(params["b"]) + 0.0 * jnp.mean(x)


def _barrier_scores(params, x, layers=None, state=None):
    return jnp.zeros((x.shape[0], 2), x.dtype) + params["b"] + 0.0 * params["w"]


def _hand_built(name, loss):
    """A Model written by hand around `loss(params, x, y)`, in the one Model signature."""

    def loss_and_grads(params, state, x, y, key=None, layout=None):
        return (*jax.value_and_grad(loss)(params, x, y), state)

    return Model(
        name=name, config={},
        init=lambda key: {"w": jnp.zeros(1), "b": jnp.zeros(2)},
        scores=_barrier_scores,
        loss=lambda params, state, x, y, key=None, layers=None: (loss(params, x, y), state),
        loss_and_grads=loss_and_grads,
        predict=lambda params, x, state=None: jnp.argmax(_barrier_scores(params, x), axis=1),
        input_shape=(20,), num_classes=2,
    )


BARRIER = _hand_built("barrier", _barrier_loss)


def test_divergence_stops_and_keeps_the_last_good_params(tmp_path, capsys):
    w, ws = 0.0, []
    while 6.0 - w > 0:
        ws.append(w)
        w -= 0.1 * (2 * (w - 10.0) - 1 / (6.0 - w))
    first_bad = len(ws)  # the loss of the params after this many updates is NaN
    assert first_bad == 4
    x, y = DATA[0][:8], (DATA[1][:8] % 2).astype(np.int32)
    result = train(BARRIER, BARRIER.init(None), (x, y), TrainConfig(learning_rate=0.1, iterations=20),
                   progress=False, checkpoint_path=tmp_path / "ckpt")
    assert result.diverged is not None and f"step {first_bad}" in result.diverged
    assert result.steps_done == first_bad - 1 == len(result.history["loss"])
    np.testing.assert_allclose(float(result.params["w"][0]), ws[first_bad - 1], rtol=1e-5)
    assert result.history["report_step"][-1] == result.steps_done
    assert ckpt.load_checkpoint(tmp_path / "ckpt").step == result.steps_done
    assert ckpt.load_checkpoint(tmp_path / "ckpt").extra["diverged"] == result.diverged
    assert result.diverged in capsys.readouterr().err  # printed even with progress=False


def _kink_loss(params, x, y):
    """Finite everywhere, but its gradient is NaN (0 * inf) once w > 6."""
    w = params["w"][0]
    return (w - 10.0) ** 2 + jnp.sqrt(jnp.maximum(6.0 - w, 0.0)) + 0.0 * jnp.sum(params["b"]) + 0.0 * jnp.mean(x)


def test_non_finite_gradient_with_finite_loss_keeps_the_current_params():
    model = _hand_built("kink", _kink_loss)
    w, ws = 0.0, [0.0]
    while w < 6.0:
        w -= 0.1 * (2 * (w - 10.0) - 0.5 / math.sqrt(6.0 - w))
        ws.append(w)
    bad = len(ws) - 1  # params after `bad` updates have a finite loss but a NaN gradient
    x, y = DATA[0][:8], (DATA[1][:8] % 2).astype(np.int32)
    result = train(model, model.init(None), (x, y), TrainConfig(learning_rate=0.1, iterations=20), progress=False)
    assert result.diverged is not None and "gradient" in result.diverged
    assert result.steps_done == bad == len(result.history["loss"])
    np.testing.assert_allclose(float(result.params["w"][0]), ws[bad], rtol=1e-5)


def test_huge_learning_rate_diverges_with_finite_params_kept():
    config = TrainConfig(learning_rate=1e3, iterations=50, report_every=10)
    result = run(config)
    assert result.diverged is not None and "non-finite" in result.diverged
    assert 2 <= result.steps_done < 50
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in result.params.values())
    assert len(result.history["loss"]) == result.steps_done
    # The kept params are exactly where an uninterrupted run of that length ends ...
    shorter = run(config.replace(iterations=result.steps_done))
    assert shorter.diverged is None
    assert_same_params(shorter.params, result.params)
    # ... and their own loss is finite.
    assert math.isfinite(float(MODEL.loss(result.params, {}, jnp.asarray(DATA[0]), jnp.asarray(DATA[1]))[0]))


def test_minibatches_are_sampled_with_replacement():
    key = jax.random.key(0)
    idx = np.asarray(sample_batch_indices(key, 0, 10, 10))
    assert idx.min() >= 0 and idx.max() < 10
    assert len(set(idx.tolist())) < 10  # repeats (P(all distinct) = 10!/10^10 ~ 4e-4, fixed key)
    big = np.asarray(sample_batch_indices(key, 1, 5, 20))  # batch larger than the data
    assert big.shape == (20,) and set(big.tolist()) <= set(range(5))
    np.testing.assert_array_equal(sample_batch_indices(key, 7, 10, 10), sample_batch_indices(key, 7, 10, 10))
    assert not np.array_equal(sample_batch_indices(key, 7, 10, 10), sample_batch_indices(key, 8, 10, 10))


def test_accuracy_is_batched_and_exact():
    x, y = jnp.asarray(DATA[0]), jnp.asarray(DATA[1])
    expected = float(jnp.mean(MODEL.predict(PARAMS, x) == y))
    assert accuracy(MODEL, PARAMS, x, y, batch=40) == expected  # 2 full chunks + 16 rows
    assert accuracy(MODEL, PARAMS, x, y) == expected


def test_progress_bar_goes_to_stderr(capsys):
    run(TrainConfig(**FULL), progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "step 50/50" in captured.err and "loss" in captured.err and "val" in captured.err


@pytest.mark.parametrize("bad, message", [
    (lambda d: (d[0].copy() * np.where(np.arange(20) == 3, np.nan, 1.0).astype(np.float32), *d[1:]), "NaN"),
    (lambda d: (d[0], d[1][:-1], *d[2:]), "shape"),
    (lambda d: (d[0], d[1] + 3, *d[2:]), "labels"),
    (lambda d: (d[0], d[1].astype(np.float32), *d[2:]), "integer"),
    (lambda d: ((d[0] * 255).astype(np.uint8), *d[1:]), "floating"),
    (lambda d: (d[0][:, :10], d[1]), r"train: x has feature shape \(10,\), expected \(20,\)"),
    (lambda d: (d[0], d[1], d[2][:, :5], d[3]), r"validation: x has feature shape \(5,\), expected \(20,\)"),
    (lambda d: d[:3], "data must be"),
])
def test_bad_input_raises_value_error(bad, message):
    with pytest.raises(ValueError, match=message):
        run(TrainConfig(**FULL), data=bad(DATA))


@pytest.mark.parametrize("change, message", [
    ({"mode": "magic"}, "mode"),
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"batch_size": 0}, "batch_size"),
    ({"decay": 1.5}, "decay"),
])
def test_bad_config_raises_value_error(change, message):
    with pytest.raises(ValueError, match=message):
        run(TrainConfig(**{**FULL, **change}))


def test_binary_model_needs_zero_one_targets():
    model = occupancy_net(hidden=3)
    params = model.init(jax.random.key(0))
    x = np.abs(DATA[0][:, :5])
    with pytest.raises(ValueError, match="0 or 1"):
        train(model, params, (x, np.full(96, 2.0, np.float32)), TrainConfig(**FULL), progress=False)
    with pytest.raises(ValueError, match="NaN"):
        train(model, params, (x, np.where(np.arange(96) == 5, np.nan, 1.0).astype(np.float32)),
              TrainConfig(**FULL), progress=False)


@pytest.mark.parametrize("name, batch_size", [("digits", None), ("conv", 8)])
def test_fast_mode_trains_like_manual(name, batch_size):
    """mode="fast" (Model.fast_gradient: the hand-written gradient in its fast layout) takes the same steps
    as "manual" up to float rounding: one-pass full-batch MLP, fused conv-ReLU-pool ConvNet."""
    from jaxnets.models import conv_net, digits_mlp

    rng = np.random.default_rng(0)
    if name == "digits":
        model, x = digits_mlp(hidden=6, input_size=12), rng.normal(size=(40, 12))
    else:
        model, x = conv_net(input_shape=(2, 6, 6), num_filters=3), rng.normal(size=(40, 2, 6, 6))
    y = rng.integers(0, 10, 40).astype(np.int32)
    params = model.init(jax.random.key(1))
    cfg = TrainConfig(mode="manual", learning_rate=0.05, iterations=6, batch_size=batch_size, dtype="float64")
    manual = train(model, params, (x, y), cfg, progress=False)
    fast = train(model, params, (x, y), cfg.replace(mode="fast"), progress=False)
    np.testing.assert_allclose(fast.history["loss"], manual.history["loss"], rtol=1e-12)
    for k in params:
        np.testing.assert_allclose(fast.params[k], manual.params[k], rtol=1e-10, atol=1e-12, err_msg=k)
