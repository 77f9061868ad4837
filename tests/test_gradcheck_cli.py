"""`jaxnets gradcheck FILE.py[:NAME]`: a user's file checked as written — every pair in a
cs231n-style file in one table, a custom_vjp with --example, the README's example — with
exit 0 when nothing fails, 1 when a gradient disagrees, 2 for bad input with one line and no
traceback, and nothing written when an option is bad."""
import json
import os
import textwrap

import pytest

from experiments import cli

HERE = os.path.dirname(__file__)
EXAMPLE = os.path.abspath(os.path.join(HERE, os.pardir, "examples", "leaky_relu.py"))
CS231N = os.path.join(HERE, "realcode", "cs231n_style_layers.py")
TUTORIAL = os.path.join(HERE, "realcode", "tut_sin_times_y_custom_vjp.py")
FAST = ["--cases", "12", "--no-transforms", "--no-second-order"]


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


def test_a_whole_cs231n_style_file_with_no_extra_file(capsys, tmp_path):
    status, out, err = _run(capsys, CS231N, "--save-dir", str(tmp_path), "--json", str(tmp_path / "r.json"), *FAST)
    assert status == 1  # conv_backward_naive's padding bug
    table = out.split("\n\n")[0]
    rows = {line.split()[0]: line.split()[1] for line in table.splitlines()[2:-1]}
    assert rows["conv_backward_naive"] == "FAIL" and "expected (2, 3, 5, 5)" in table
    assert rows["batchnorm_backward"] == rows["batchnorm_backward_alt"] == "PASS"
    assert rows["lstm_step_backward"] == "PASS"  # two outputs, dnext_c updated in place
    assert rows["relu_backward"] == "AMBIGUOUS"  # ReLU'(0) = 1 against the project's twin
    assert rows["spatial_groupnorm_backward"] == "SKIP" and "NotImplementedError" in table
    assert {"dropout_backward", "softmax_loss", "word_embedding_backward", "temporal_softmax_loss",
            "max_pool_backward_naive", "affine_backward"} <= set(rows)
    assert "Traceback" not in err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["status"] == "fail" and len(report["rows"]) == len(rows)


def test_a_custom_vjp_from_jaxs_tutorial_with_example_shapes(capsys):
    status, out, _ = _run(capsys, f"{TUTORIAL}:f", "--example", "3x4,3x4", *FAST)
    assert status == 0, out
    assert "check f (custom_vjp): PASS" in out and "bwd ~ autodiff" in out


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

    def forever_forward(x):
        while x.sum() < np.inf:
            x = x + 0.0
        return x, None

    def forever_backward(dout, cache):
        return dout
''')


@pytest.fixture
def layers(tmp_path):
    path = tmp_path / "layers.py"
    path.write_text(LAYERS)
    return str(path)


def test_a_plain_layer_passes_and_json_is_written(capsys, layers, tmp_path):
    status, out, _ = _run(capsys, f"{layers}:double", "--json", str(tmp_path / "r.json"), *FAST)
    assert status == 0, out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["status"] == "pass" and report["checks"]["backward ~ finite differences"]["cases"] == 12


@pytest.mark.parametrize("target,extra,message", [
    ("missing.py:double", [], "missing.py: no such file"),
    ("{layers}:triple", [], "nothing named 'triple' to check (found:"),
    ("layers", [], "expected FILE.py or FILE.py:NAME"),
    ("{layers}:twice", [], "returned 1 gradient(s), expected 2"),
    ("{layers}:nan", [], "contains NaN or inf"),
    ("{layers}:picky", [], "rejected example 0 (2x2; stride=2): ValueError: only stride 3 is supported"),
    ("{layers}:double", ["--json", "{tmp}"], "is a folder, not a file"),
    ("{layers}:double", ["--example", "2x"], "is not a shape like 4x5"),
    ("{layers}:double", ["--example", "2x3:complex"], "unknown domain 'complex'"),
    ("{layers}:double", ["--replay", "{tmp}/nothing.npz"], "not a case file saved by jaxnets gradcheck"),
])
def test_bad_input_exits_2_with_one_line(capsys, layers, tmp_path, target, extra, message):
    argv = [target.format(layers=layers)] + [e.format(tmp=tmp_path) for e in extra]
    status, out, err = _run(capsys, *argv, *FAST)
    assert status == 2, out
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("jaxnets gradcheck: error: ")


def test_a_case_saved_for_one_layer_is_refused_for_another(capsys, tmp_path):
    _run(capsys, f"{EXAMPLE}:leaky_relu", "--save-dir", str(tmp_path), *FAST)
    saved = next(str(tmp_path / f) for f in os.listdir(tmp_path) if f.endswith(".npz"))
    status, _, err = _run(capsys, f"{EXAMPLE}:leaky_relu_fixed", "--replay", saved, *FAST)
    assert status == 2 and "saved for 'leaky_relu_backward', not 'leaky_relu_fixed_backward'" in err


def test_a_runaway_layer_times_out_instead_of_hanging(capsys, layers):
    status, out, err = _run(capsys, f"{layers}:forever", "--example", "2x2", "--timeout", "1", *FAST)
    assert status == 2 and "timed out after 1 s" in err and "Traceback" not in err


def test_options_of_the_other_mode_are_refused(capsys, layers):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["gradcheck", f"{layers}:double", "--update-readme", "README.md"])
    assert exit_.value.code == 2
    with pytest.raises(SystemExit):
        cli.main(["gradcheck", "--replay", "x.npz"])
    assert "FILE.py:NAME" in capsys.readouterr().err


def test_help_tells_every_mode_and_option(capsys):
    with pytest.raises(SystemExit):
        cli.main(["gradcheck", "--help"])
    out = capsys.readouterr().out
    for word in ("FILE.py:NAME", "NAME_example()", "--example", "--reference", "--replay", "--rtol", "--atol",
                 "--kinks", "--timeout", "--fast", "custom_vjp", "custom_jvp", "Exit status", "AMBIGUOUS", "DOMAIN"):
        assert word in out, word


def test_api_ops_rechecks_named_ops_and_refuses_unknown_ones(capsys, tmp_path):
    from experiments import api_ops

    out = tmp_path / "rows.json"
    assert api_ops.main(["tanh", "--seeds", "1", "--json", str(out)]) == 0
    assert "tanh seed 0: pass" in capsys.readouterr().out
    assert [r["op"] for r in json.loads(out.read_text())] == ["tanh"]
    with pytest.raises(SystemExit) as exc:
        api_ops.main(["tanhh"])
    assert exc.value.code == 2 and "unknown op(s) tanhh" in capsys.readouterr().err
