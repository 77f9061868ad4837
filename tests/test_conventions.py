"""Conventions as data (issue 27): deeplearning.ai's "Step by Step" files checked as written —
a notebook export, a folder split one part per file, the course's 1/m convention recognised
and every other factor failed, each classic mistake planted and caught, names cs231n shares
resolved by signature, and honest exits (nothing judged: 2; unfilled: SKIP; a crash: its
exception and line)."""
import os
import shutil

import numpy as np
import pytest

from experiments import cli
from jaxnets.gradcheck import conventions
from jaxnets.gradcheck.api import check_layer
from jaxnets.gradcheck.load import load

HERE = os.path.dirname(__file__)
DLAI = os.path.join(HERE, "dlai")
DNN = os.path.join(DLAI, "dnn_step_by_step.py")
CNN = os.path.join(DLAI, "cnn_step_by_step.py")
REG = os.path.join(DLAI, "regularization.py")
RNN = os.path.join(DLAI, "rnn_folder")
FAST = ["--cases", "10", "--no-transforms", "--no-second-order"]


def _rows(capsys, target, tmp_path, *extra):
    status = cli.main(["gradcheck", target, "--save-dir", str(tmp_path / "cases"), *FAST, *extra])
    out, err = capsys.readouterr()
    table = out.split("\n\n")[0].splitlines()
    rows = {line.split()[0]: (line.split()[1], line) for line in table[2:-1]}
    return status, rows, out, err


def test_a_notebook_export_is_loaded_for_its_definitions_only():
    module = load(DNN)
    assert callable(module.linear_backward) and callable(module.linear_activation_forward)
    assert "t_Z" not in vars(module) and "parameters" not in vars(module)  # top-level test code did not run
    assert "testCases_v4a" in " ".join(module.gradcheck_failed_imports.values())


def test_the_dnn_file_with_its_1_over_m_convention(capsys, tmp_path):
    status, rows, out, err = _rows(capsys, DNN, tmp_path)
    assert status == 0, out
    assert rows["linear_backward"][0] == "PASS" and "batch-mean convention" in rows["linear_backward"][1]
    assert "m * dW, m * db" in rows["linear_backward"][1]
    assert rows["linear_activation_backward"][0] == "PASS"
    assert "activation: relu, sigmoid" in rows["linear_activation_backward"][1]  # every value the code accepts
    assert rows["sigmoid_backward"][0] == "PASS" and rows["relu_backward"][0] in ("PASS", "AMBIGUOUS")
    assert rows["L_model_backward"][0] == "PASS" and "L_model_forward" in rows["L_model_backward"][1]
    assert "linear_backward_test" not in rows  # test helpers get no row
    assert "Traceback" not in err


# (file, the correct text, the planted mistake, the row that must fail)
MISTAKES = [
    (DNN, "db = 1. / m * np.sum(dZ", "db = np.sum(dZ", "linear_backward"),  # the missing 1/m on db
    (DNN, "db = 1. / m * np.sum(dZ", "db = 2. / m * np.sum(dZ", "linear_backward"),  # off by another factor
    (DNN, "dA_prev = np.dot(W.T, dZ)", "dA_prev = np.dot(W.T, dZ) / m", "linear_backward"),  # 1/m on dA_prev too
    (DNN, "dW = 1. / m * np.dot(dZ, A_prev.T)", "dW = 1. / m * np.dot(A_prev, dZ.T).T.T", "linear_backward"),
    (DNN, "dZ = dA * s * (1 - s)", "dZ = dA * Z * (1 - Z)", "sigmoid_backward"),  # the cache's Z used as A
    (DNN, "dZ[Z <= 0] = 0", "dZ[Z < -1] = 0", "relu_backward"),
    (DNN, """    if activation == "relu":
        dZ = relu_backward""", """    if activation == "relu":
        dZ = sigmoid_backward""", "linear_activation_backward"),  # only the "relu" value shows it
    (os.path.join(RNN, "rnn_backward.py"), "dtanh = (1 - a_next ** 2) * da_next", "dtanh = (1 - a_next) ** 2 * da_next",
     "rnn_cell_backward"),
    (os.path.join(RNN, "rnn_backward.py"), "lstm_cell_backward(da[:, :, t] + da_prevt,", "lstm_cell_backward(da[:, :, t],",
     "lstm_backward"),  # the notebook's own well-known slip
    (os.path.join(RNN, "rnn_backward.py"), "dc_prev = dc * ft", "dc_prev = dc_next * ft", "lstm_cell_backward"),
    (CNN, "dA_prev[i, :, :, :] = da_prev_pad[pad:da_prev_pad.shape[0] - pad, pad:da_prev_pad.shape[1] - pad, :]",
     "dA_prev[i, :, :, :] = da_prev_pad[:n_H_prev, :n_W_prev, :]", "conv_backward"),  # padding not cut off
    (CNN, "np.ones(shape) * dz / (n_H * n_W)", "np.ones(shape) * dz", "pool_backward"),  # average not divided
    (CNN, "return x == np.max(x)", "return x == np.min(x)", "pool_backward"),  # the ties rule excuses only ties
    # whole networks, against the cost through the file's own forward
    (DNN, 'linear_activation_backward(dAL, current_cache, "sigmoid")',
     'linear_activation_backward(dAL, current_cache, "relu")', "L_model_backward"),
    (REG, "dW2 = 1. / m * np.dot(dZ2, A1.T)\n", "dW2 = 1. / m * np.dot(dZ2, A1.T) * 2\n", "backward_propagation"),
    (REG, "+ lambd / m * W2", "+ lambd / (2 * m) * W2", "backward_propagation_with_regularization"),
    (REG, "dA1 = dA1 * D1 / keep_prob", "dA1 = dA1 * D1", "backward_propagation_with_dropout"),
]


@pytest.mark.parametrize("path, right, wrong, row", MISTAKES, ids=[f"{m[3]}-{i}" for i, m in enumerate(MISTAKES)])
def test_each_planted_mistake_fails(capsys, tmp_path, path, right, wrong, row):
    folder = os.path.dirname(path) == RNN
    work = tmp_path / "src"
    if folder:
        shutil.copytree(RNN, work)
        target = work / os.path.basename(path)
    else:
        work.mkdir()
        target = work / os.path.basename(path)
        shutil.copy(path, target)
    text = target.read_text()
    assert right in text
    target.write_text(text.replace(right, wrong))
    status, rows, out, _ = _rows(capsys, str(work) if folder else str(target), tmp_path)
    assert status == 1 and rows[row][0] == "FAIL", out


def test_an_export_that_is_not_python_as_a_whole(capsys, tmp_path):
    f = tmp_path / "export.py"
    f.write_text("\ufeffimport numpy as np\n\n"
                 "def sigmoid(Z):\n    return 1 / (1 + np.exp(-Z)), Z\n\n"
                 "print(sigmoid(np.zeros(3)))\n#output\n"
                 "a_next[4] =  [ 0.59584544  0.18141802\n -0.18887155  0.99815551]\n"
                 " \"\"\"\n    a docstring indented outside its function\n    \"\"\"\n"
                 "def sigmoid_backward(dA, cache):\n    s = 1 / (1 + np.exp(-cache))\n    return dA * s * (1 - s)\n")
    status, rows, out, err = _rows(capsys, str(f), tmp_path)
    assert status == 0 and rows["sigmoid_backward"][0] == "PASS", out + err
    assert "not Python as a whole" in err and "(lines 8-12)" in err


def test_whole_network_backwards_through_the_files_own_forward(capsys, tmp_path):
    status, rows, out, err = _rows(capsys, REG, tmp_path)
    assert status == 0, out
    for name in ("backward_propagation", "backward_propagation_with_regularization",
                 "backward_propagation_with_dropout"):
        assert rows[name][0] == "PASS" and "through the file's own forward_propagation" in rows[name][1], out
    status, rows, out, err = _rows(capsys, DNN, tmp_path)
    assert rows["L_model_backward"][0] == "PASS" and "L_model_forward and compute_cost" in rows["L_model_backward"][1]
    part = tmp_path / "part.py"  # the backward without its forward: the row names what is missing
    part.write_text(open(REG).read().split("def forward_propagation_with_dropout")[0].replace(
        "def forward_propagation(", "def forward_propagation_plain("))
    status, rows, out, err = _rows(capsys, str(part), tmp_path)
    assert rows["backward_propagation"][0] == "SKIP" and "needs forward_propagation, not found" in rows[
        "backward_propagation"][1]


def test_a_folder_split_one_part_per_file_with_dict_gradients(capsys, tmp_path):
    status, rows, out, err = _rows(capsys, RNN, tmp_path)
    assert status == 0, out
    assert {r: v[0] for r, v in rows.items()} == {"rnn_cell_backward": "PASS", "rnn_backward": "PASS",
                                                  "lstm_cell_backward": "PASS", "lstm_backward": "PASS"}
    assert "deeplearning.ai geometry" in rows["rnn_backward"][1]


def _cs231n_rnn_forward(x, h0, Wx, Wh, b):  # cs231n's signature (the body does not matter here)
    return x, None


def test_an_unknown_pair_takes_its_shapes_from_the_courses_own_test_case(capsys, tmp_path):
    (tmp_path / "swish.py").write_text(
        "import numpy as np\n\n"
        "def swish(Z):\n    s = 1 / (1 + np.exp(-Z))\n    return Z * s, Z\n\n"
        "def swish_backward(dA, cache):\n    s = 1 / (1 + np.exp(-cache))\n    return dA * (s + cache * s * (1 - s))\n")
    (tmp_path / "testCases.py").write_text(
        "import numpy as np\n\ndef swish_test_case():\n    np.random.seed(1)\n    return (np.random.randn(3, 2),)\n")
    status, rows, out, err = _rows(capsys, str(tmp_path), tmp_path / "out")
    assert status == 0 and rows["swish_backward"][0] == "PASS" and "swish_test_case()" in rows["swish_backward"][1]
    assert "swish_test_case" not in rows  # the helper file's functions get no row


def test_a_name_both_courses_use_is_resolved_by_signature():
    dl = load(RNN)
    assert conventions.resolve("rnn_forward", _cs231n_rnn_forward).convention.name == "cs231n"
    assert conventions.resolve("rnn_forward", dl.rnn_forward).convention.name == "deeplearning.ai"
    assert conventions.resolve("rnn_forward", lambda q: q) is None  # neither: no guess, no blame


def test_np_is_bound_for_a_notebook_part_that_never_imports_it(capsys, tmp_path):
    module = load(CNN)
    assert module.np is np and any("`np` is used but never imported" in n for n in module.gradcheck_notes)
    status, rows, out, err = _rows(capsys, CNN, tmp_path, "--no-fast")
    assert rows["conv_backward"][0] == "PASS", out
    # the course's max-pool mask at ties is its documented rule: reported, not failed
    assert rows["pool_backward"][0] == "AMBIGUOUS" and "every tied maximum" in rows["pool_backward"][1], out


def test_honest_exits(capsys, tmp_path):
    f = tmp_path / "unfinished.py"
    f.write_text("import numpy as np\n\n"
                 "def relu(Z):\n    return np.maximum(0, Z), Z\n\n"
                 "def relu_backward(dA, cache):\n    pass\n\n"
                 "def sigmoid(Z):\n    s = 1 / (1 + np.exp(-Z))\n    return s, Z\n\n"
                 "def sigmoid_backward(dA, cache):\n    dZ = None\n    return dZ\n\n"
                 "def test_relu():\n    assert True\n")
    status, rows, out, err = _rows(capsys, str(f), tmp_path)
    assert status == 2 and rows["relu_backward"][0] == "SKIP" and "not implemented" in rows["relu_backward"][1]
    assert rows["sigmoid_backward"][0] == "SKIP" and "test_relu" not in rows
    assert "nothing judged" in err.splitlines()[-1] and "not implemented: relu_backward" in err.splitlines()[-1]
    crash = tmp_path / "crash.py"
    crash.write_text("import numpy as np\n\n"
                     "def relu(Z):\n    return np.maximum(0, Z), Z\n\n"
                     "def relu_backward(dA, cache):\n    Z = cache\n    return dA * (Z > 0) @ undefined_name\n")
    status, rows, out, err = _rows(capsys, str(crash), tmp_path)
    assert rows["relu_backward"][0] == "FAIL" and "NameError" in rows["relu_backward"][1]
    assert "crash.py:8" in rows["relu_backward"][1]
    empty = tmp_path / "empty.py"
    empty.write_text("def helper(x):\n    return x\n")
    status, rows, out, err = _rows(capsys, str(empty), tmp_path)
    assert status == 2 and "nothing judged" in err and "no backward pass found" in err


def _ln_forward(x, gamma, beta):
    mu, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
    xh = (x - mu) / np.sqrt(var + 1e-5)
    return gamma * xh + beta, (xh, gamma, var)


def _ln_backward_gamma_squared(dout, cache):
    xh, gamma, var = cache
    dxh = dout * gamma ** 2  # the bug: invisible when gamma is drawn from {0, 1}
    dx = (dxh - dxh.mean(1, keepdims=True) - xh * (dxh * xh).mean(1, keepdims=True)) / np.sqrt(var + 1e-5)
    return dx, (dout * xh).sum(0), dout.sum(0)


def test_generated_values_never_come_from_the_example_values():
    report = check_layer(_ln_forward, _ln_backward_gamma_squared, (np.random.randn(4, 6), np.ones(6), np.zeros(6)),
                         cases=14, transforms=False, second_order=False)
    assert report.status == "fail"
