"""A corrupted, foreign or mismatched checkpoint is one ValueError naming the file and the
problem (the CLI prints it on one line, exit 2; tests/test_cli_faults.py runs the CLI)."""
import json
import shutil

import numpy as np
import pytest

from jaxnets.models import two_layer_net
from jaxnets.training import TrainConfig, train
from jaxnets.training import checkpoint as ckpt

MODEL = two_layer_net(input_size=6, hidden_size=4, num_classes=3)
CONFIG = TrainConfig(learning_rate=0.1, iterations=5, batch_size=4, dtype="float32")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((12, 6)).astype(np.float32), rng.integers(0, 3, 12)
    import jax

    train(MODEL, MODEL.init(jax.random.key(0)), (x, y), CONFIG, progress=False, checkpoint_path=d / "ck")
    return d


def edit_json(meta):
    meta = dict(meta)
    meta["step"] = "5"
    return meta


def other_model(meta):
    meta = dict(meta)
    meta["model"] = {"name": "two_layer", "config": {**meta["model"]["config"], "hidden_size": 7}}
    return meta


FAULTS = {
    "truncated npz": ("npz", lambda b: b[: len(b) // 2], r"ck.npz: unreadable checkpoint arrays, truncated"),
    "empty npz": ("npz", lambda b: b"", r"ck.npz: unreadable checkpoint arrays"),
    "not an npz": ("npz", lambda b: b"hello", r"ck.npz: unreadable checkpoint arrays"),
    "empty json": ("json", lambda b: b"", r"ck.json: empty file"),
    "json list": ("json", lambda b: b"[1, 2]", r"ck.json: checkpoint metadata is a JSON object, this file holds a JSON list"),
    "json missing keys": ("meta", lambda m: {k: v for k, v in m.items() if k not in ("step", "params")},
                          r"ck.json: checkpoint metadata lacks step, params"),
    "step a string": ("meta", edit_json, r"ck.json: step must be an integer >= 0, got '5' \(str\)"),
    "bad array entry": ("meta", lambda m: {**m, "params": {"W1": [1]}}, r"params entry 'W1' must give shape"),
    "another model's shapes": ("meta", other_model,
                               r"ck.npz: parameters 'W1' has shape \(6, 4\), model two_layer .* needs \(6, 7\)"),
    "foreign config": ("meta", lambda m: {**m, "model": {"name": "two_layer", "config": {"depth": 3}}},
                       r"config \{'depth': 3\} does not fit its factory"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_corrupted_or_foreign_checkpoint_is_one_value_error(saved, tmp_path, fault):
    for name in ("ck.npz", "ck.json"):
        shutil.copy(saved / name, tmp_path / name)
    kind, change, message = FAULTS[fault]
    if kind == "meta":
        path = tmp_path / "ck.json"
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
    else:
        path = tmp_path / f"ck.{kind}"
        path.write_bytes(change(path.read_bytes()))
    with pytest.raises(ValueError, match=message):
        ckpt.load_checkpoint(tmp_path / "ck")


def test_a_resume_that_would_go_backwards_is_refused(saved):
    loaded = ckpt.load_checkpoint(saved / "ck")
    ckpt.check_resumable(loaded, MODEL, CONFIG.replace(iterations=5))  # resuming at the end is fine
    with pytest.raises(ValueError, match=r"it is at step 5, past the 3 iterations asked for.*go backwards"):
        ckpt.check_resumable(loaded, MODEL, CONFIG.replace(iterations=3), source="ck")
    with pytest.raises(ValueError, match=r"cannot resume from ck: it is for model 'two_layer'"):
        ckpt.check_resumable(loaded, two_layer_net(input_size=6, hidden_size=5, num_classes=3), CONFIG, source="ck")
    with pytest.raises(ValueError, match=r"past the 3 iterations"):
        train(MODEL, None, (np.zeros((12, 6), np.float32), np.zeros(12, int)), CONFIG.replace(iterations=3),
              progress=False, resume=saved / "ck")
