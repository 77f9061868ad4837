"""`jaxnets gradcheck FILE.py:NAME`: exit 0 when every check passes, 1 when a gradient
disagrees, 2 for bad input with one line and no traceback; the README's example file."""
import json
import os
import textwrap

import pytest

from experiments import cli

EXAMPLE = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, "examples", "leaky_relu.py"))
FAST = ["--cases", "12", "--no-transforms"]


def _run(capsys, *argv):
    status = cli.main(["gradcheck", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_the_readme_example_fails_and_its_fix_passes(capsys, tmp_path, monkeypatch):
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # where the default --save-dir would go
    status, out, _ = _run(capsys, f"{EXAMPLE}:leaky_relu", "--save-dir", str(tmp_path), *FAST)
    assert status == 1
    assert "FAIL backward ~ autodiff" in out and "exactly where x < 0" in out
    saved = [f for f in os.listdir(tmp_path) if f.endswith(".npz")]
    assert saved and f"jaxnets gradcheck {EXAMPLE}:leaky_relu --replay {tmp_path}" in out
    status, out, _ = _run(capsys, f"{EXAMPLE}:leaky_relu", "--replay", str(tmp_path / saved[0]), *FAST)
    assert status == 1 and "1 cases" in out
    assert not os.listdir(workdir), "a replayed case is not saved again (nor anywhere else)"
    status, out, _ = _run(capsys, f"{EXAMPLE}:leaky_relu_fixed", "--save-dir", str(tmp_path / "none"), *FAST)
    assert status == 0, out
    assert "result: AMBIGUOUS" in out or "result: PASS" in out
    assert not (tmp_path / "none").exists(), "nothing is written when every check passes"


LAYERS = textwrap.dedent('''
    import numpy as np

    def double_forward(x):
        return 2 * x, None

    def double_backward(dout, cache):
        return 2 * dout

    def double_example():
        return (np.arange(6.0).reshape(2, 3) - 2,)

    def twice_forward(x, y):
        return x * y, (x, y)

    def twice_backward(dout, cache):
        return dout * cache[1]

    def twice_example():
        return np.ones((2, 2)), np.ones((2, 2))

    def nan_forward(x):
        return x, None

    def nan_backward(dout, cache):
        return dout

    def nan_example():
        return (np.array([1.0, np.nan]),)

    def picky_forward(x, stride=1):
        if stride != 3:
            raise ValueError("only stride 3 is supported")
        return x, None

    def picky_backward(dout, cache):
        return dout

    def picky_example():
        return np.ones((2, 2)), {"stride": 2}
''')


@pytest.fixture
def layers(tmp_path):
    path = tmp_path / "layers.py"
    path.write_text(LAYERS)
    return str(path)


def test_a_plain_layer_passes_and_json_is_written(capsys, layers, tmp_path):
    status, out, _ = _run(capsys, f"{layers}:double", "--json", str(tmp_path / "r.json"), *FAST)
    assert status == 0, out
    assert "not run: the forward is not JAX-traceable" not in out  # 2 * x traces fine
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["status"] == "pass" and report["pairs"]["backward ~ finite differences"]["cases"] == 12


@pytest.mark.parametrize("target,message", [
    ("missing.py:double", "missing.py: no such file"),
    ("{layers}:triple", "no function triple_forward (found: double, nan, picky, twice)"),
    ("{layers}", "expected FILE.py:NAME"),
    ("{layers}:twice", "returned 1 gradient(s), expected 2"),
    ("{layers}:nan", "contains NaN or inf"),
    ("{layers}:picky", "rejected example 0 (2x2; stride=2): ValueError: only stride 3 is supported"),
])
def test_bad_input_exits_2_with_one_line(capsys, layers, target, message):
    status, out, err = _run(capsys, target.format(layers=layers), *FAST)
    assert status == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("jaxnets gradcheck: error: ")


def test_options_of_the_other_mode_are_refused(capsys, layers):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["gradcheck", f"{layers}:double", "--update-readme", "README.md"])
    assert exit_.value.code == 2
    with pytest.raises(SystemExit):
        cli.main(["gradcheck", "--replay", "x.npz"])
    assert "FILE.py:NAME" in capsys.readouterr().err


def test_help_tells_both_modes(capsys):
    with pytest.raises(SystemExit):
        cli.main(["gradcheck", "--help"])
    out = capsys.readouterr().out
    for word in ("FILE.py:NAME", "NAME_example()", "--reference", "--replay", "Exit status", "ambiguous"):
        assert word in out
