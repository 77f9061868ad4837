"""Experiment scripts, run folders, the reproduce table, `predict` and the `jaxnets` command,
on a tiny IDX dataset cut from the built-in sample (no shared data needed)."""
import json

import numpy as np
import pytest
from matplotlib import image as mpimg
from PIL import Image

from experiments import (cli, deep_convnet, digits, dropout, normalization, predict, reproduce, runs, two_layer,
                         vanishing_gradients)
from jaxnets.data import DataError, load_sample, write_idx


@pytest.fixture(scope="module")
def tiny_idx(tmp_path_factory):
    """300 training and 100 test images (from the built-in sample) as gzipped IDX files."""
    d = tmp_path_factory.mktemp("tiny_idx")
    s = load_sample()
    order = np.random.default_rng(0).permutation(len(s.y_train))
    tr, te = order[:300], order[300:400]
    write_idx(d / "train-images-idx3-ubyte.gz", s.x_train[tr])
    write_idx(d / "train-labels-idx1-ubyte.gz", s.y_train[tr].astype(np.uint8))
    write_idx(d / "t10k-images-idx3-ubyte.gz", s.x_train[te])
    write_idx(d / "t10k-labels-idx1-ubyte.gz", s.y_train[te].astype(np.uint8))
    return d


@pytest.fixture(scope="module")
def digits_run(tiny_idx, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    metrics = digits.main(["--data", f"idx:{tiny_idx}", "--iterations", "30", "--out", str(out),
                           "--compare-modes", "--no-progress"], log=lambda *a: None)
    return out, metrics


def test_run_folder_holds_metrics_params_preprocessing_and_plots(digits_run):
    out, metrics = digits_run
    run_dir = out / "001_digits_idx"
    for name in ("metrics.json", "params.npz", "preprocess.npz", "loss.png", "accuracy.png", "predictions.png"):
        assert (run_dir / name).is_file(), name
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["data"]["n_train"] == 240 and saved["data"]["n_val"] == 60 and saved["data"]["n_test"] == 100
    assert saved["train_config"]["iterations"] == 30 and saved["grad_mode"] == "fast"
    assert len(saved["history"]["loss"]) == 30 and saved["history"]["report_step"][-1] == 30
    assert saved["final"]["test_acc"] == metrics["final"]["test_acc"]
    assert saved["device"]["backend"] and saved["wall_time_s"] > 0


def test_compare_modes_trains_both_modes_to_the_same_parameters(digits_run):
    _, metrics = digits_run
    c = metrics["compare_modes"]
    assert c["modes"] == ["fast", "autodiff"]  # the CLI's default: the hand-written gradient, fast layout
    assert c["max_abs_param_diff"] < 1e-4  # float32, 30 full-batch steps
    assert c["final"]["fast"]["test_acc"] == c["final"]["autodiff"]["test_acc"]


def test_reproduce_table_is_built_from_the_metrics_files(digits_run):
    out, metrics = digits_run
    table = reproduce.results_table(out)
    row = next(line for line in table.splitlines() if "001 digits" in line)
    assert f"test {100 * metrics['final']['test_acc']:.2f}%" in row
    assert "dev/val 83.00%" in row  # the document's number, next to ours
    assert "`001_digits_idx`" in row and "max abs param diff" in row


def test_readme_tables_replace_only_their_marked_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold table\n<!-- results:end -->\nrest\n")
    runs.replace_marked_block(readme, "results", "| new |")
    assert readme.read_text() == "intro\n<!-- results:start -->\n| new |\n<!-- results:end -->\nrest\n"
    with pytest.raises(ValueError, match="markers"):
        runs.replace_marked_block(readme, "gradcheck", "t")


def test_predict_gives_the_runs_test_accuracy(digits_run, tiny_idx, capsys):
    out, metrics = digits_run
    lines = []
    predict.main([str(out / "001_digits_idx"), str(tiny_idx / "t10k-images-idx3-ubyte.gz"),
                  "--labels", str(tiny_idx / "t10k-labels-idx1-ubyte.gz"), "--show", "2"], log=lines.append)
    assert lines[-1] == f"accuracy {metrics['final']['test_acc']:.4f} on 100 labelled images"
    assert lines[0].startswith("     0  prediction ")


def test_predict_reads_png_images_and_refuses_to_resample(digits_run, tmp_path):
    out, _ = digits_run
    img = load_sample().x_train[0]
    Image.fromarray(img).save(tmp_path / "digit.png")  # 8-bit grey PNG
    assert np.array_equal(predict.read_image_file(tmp_path / "digit.png")[0], img)
    mpimg.imsave(tmp_path / "rgb.png", img, cmap="gray", vmin=0, vmax=255)  # RGBA through a colormap
    assert np.max(np.abs(predict.read_image_file(tmp_path / "rgb.png")[0].astype(int) - img)) <= 1
    lines = []
    predict.main([str(out / "001_digits_idx"), str(tmp_path / "digit.png")], log=lines.append)
    assert len(lines) == 1 and "prediction" in lines[0]
    mpimg.imsave(tmp_path / "big.png", np.zeros((30, 30)), cmap="gray")
    with pytest.raises(DataError, match="30x30 pixels.*28x28"):
        predict.read_image_file(tmp_path / "big.png")
    with pytest.raises(DataError, match="unknown file kind"):
        (tmp_path / "notes.txt").write_text("x")
        predict.read_inputs(tmp_path / "notes.txt")


def test_overfit_run_limits_the_training_rows(tiny_idx, tmp_path):
    metrics = two_layer.main(["--run", "overfit", "--data", f"idx:{tiny_idx}", "--n-train", "100",
                              "--iterations", "5", "--out", str(tmp_path), "--no-progress"], log=lambda *a: None)
    assert metrics["data"]["n_train"] == 100 and metrics["target"]["metric"] == "train_acc"
    assert 0 <= metrics["final"]["last_batch_train_acc"] <= 1
    with pytest.raises(ValueError, match="--n-train 500 must be between 1 and 240"):
        two_layer.main(["--run", "overfit", "--data", f"idx:{tiny_idx}", "--n-train", "500", "--out", str(tmp_path),
                        "--overwrite"])


def test_cli_reports_bad_input_in_one_line_with_status_2(tmp_path, capsys):
    assert cli.main(["predict", str(tmp_path), "x.png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxnets predict: error:") and "metrics.json is missing" in err and len(err.splitlines()) == 1
    assert cli.main(["train", "digits", "--data", f"idx:{tmp_path / 'absent'}", "--out", str(tmp_path)]) == 2
    assert "directory not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "nonsense"])
    assert e.value.code == 2
    assert cli.main([]) == 2 and cli.main(["--help"]) == 0
    capsys.readouterr()
    assert cli.main(["train", "--help"]) == 0
    listed = capsys.readouterr().out
    assert all(f"\n  {name} " in listed for name in cli.EXPERIMENTS), listed


@pytest.mark.parametrize("experiment, own, choice", [
    ("deep_convnet", ["--filters", "--hidden", "--dropout", "--no-batchnorm", "--reg"], []),
    ("occupancy", ["--train-norms"], []),
    ("digits", ["--document"], ["--document", "003"]),
    ("two_layer", ["--run", "--hidden", "--reg", "--n-train"], ["--run", "overfit"]),
    ("convnet", ["--filters"], []),
    ("filters", [], []),
])
def test_every_experiments_help_lists_all_its_options(experiment, own, choice, capsys):
    """`jaxnets train X --help` (also after a preselecting option) prints the whole parser."""
    common = [] if experiment == "filters" else [
        "--data", "--mode", "--learning-rate", "--iterations", "--batch-size", "--decay", "--report-every",
        "--seed", "--compare-modes", "--no-progress", "--checkpoint-every", "--resume", "--data-parallel",
        "--coordinator", "--num-processes", "--process-id", "--distributed-timeout", "--tag", "--target",
        "--optimizer", "--momentum", "--decay-rate", "--beta1", "--beta2", "--eps"]
    for argv in (["train", experiment, "--help"], ["train", experiment, *choice, "--help"]):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 0
        text = capsys.readouterr().out
        assert text.startswith(f"usage: jaxnets train {experiment}")
        missing = [opt for opt in ["--out", *common, *own] if opt not in text]
        assert not missing, f"{' '.join(argv)} does not list {missing}"


def test_help_defaults_follow_the_chosen_document(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "digits", "--document", "003", "--help"])
    assert "default 1000" in capsys.readouterr().out  # 003 runs 1000 iterations, 001 500
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "digits", "--document"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxnets train digits: error: argument --document: expected one argument") and err.count("\n") == 1


def test_interrupted_run_resumes_from_its_checkpoint(tiny_idx, tmp_path):
    common = ["--data", f"idx:{tiny_idx}", "--out", str(tmp_path), "--no-progress", "--batch-size", "20"]
    quiet = dict(log=lambda *a: None)
    whole = digits.main(common + ["--iterations", "12", "--tag", "whole"], **quiet)
    digits.main(common + ["--iterations", "7", "--checkpoint-every", "5"], **quiet)
    ckpt = tmp_path / "001_digits_idx" / "checkpoint"
    assert ckpt.with_suffix(".npz").is_file()
    resumed = digits.main(common + ["--iterations", "12", "--resume", str(ckpt), "--checkpoint-every", "5",
                                    "--overwrite"], **quiet)  # continuing a finished run replaces it
    assert resumed["history"]["loss"] == whole["history"]["loss"]
    a, _ = runs.load_params(tmp_path / "001_digits_idx_whole")
    b, _ = runs.load_params(tmp_path / "001_digits_idx")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_deep_convnet_run_keeps_its_batch_norm_state_for_predict(tiny_idx, tmp_path, capsys):
    metrics = deep_convnet.main(["--data", f"idx:{tiny_idx}", "--filters", "2", "--hidden", "4", "--iterations", "6",
                                 "--batch-size", "10", "--out", str(tmp_path), "--no-progress", "--compare-modes"],
                                log=lambda *a: None)
    run_dir = tmp_path / "deep_convnet_idx"
    for name in ("state.npz", "params.npz", "filters.png", "misclassified.png"):
        assert (run_dir / name).is_file(), name
    assert metrics["train_config"]["optimizer"] == "adam" and metrics["compare_modes"]["modes"] == ["manual", "autodiff"]
    capsys.readouterr()
    assert cli.main(["predict", str(run_dir), str(tiny_idx / "t10k-images-idx3-ubyte.gz"), "--labels",
                     str(tiny_idx / "t10k-labels-idx1-ubyte.gz")]) == 0
    assert f"accuracy {metrics['final']['test_acc']:.4f}" in capsys.readouterr().out


def test_normalization_and_dropout_experiments_write_their_plots(tiny_idx, tmp_path):
    quiet = dict(log=lambda *a: None)
    m = normalization.main(["--data", f"idx:{tiny_idx}", "--scales", "2", "--epochs", "1", "--out", str(tmp_path)], **quiet)
    assert set(m["results"]) == {"none", "batchnorm", "layernorm"} and all(len(v) == 2 for v in m["results"].values())
    assert (tmp_path / "normalization" / "loss_vs_scale.png").is_file()
    assert (tmp_path / "normalization" / "accuracy_vs_scale.png").is_file()
    d = dropout.main(["--data", f"idx:{tiny_idx}", "--epochs", "2", "--out", str(tmp_path)], **quiet)
    assert set(d["results"]) == {"0.0", "0.75"} and (tmp_path / "dropout" / "accuracy.png").is_file()
    summary = reproduce.sweeps_summary(tmp_path)  # reproduce's lines for the README
    assert summary.startswith("- **Normalisation** (`normalization/`: 5-layer net [100, 100, 100, 100], 240 training")
    assert "- **Dropout** (`dropout/`: 784-500-10, 240 training images, 2 epochs): rate 0.0: train" in summary
    with pytest.raises(ValueError, match="--rates"):
        dropout.main(["--data", f"idx:{tiny_idx}", "--rates", "half", "--out", str(tmp_path)], **quiet)


def test_vanishing_gradients_vanish_and_explode_and_match_autodiff(tmp_path):
    """The hand-written BPTT's dL/dh_t: in the vanilla RNN it shrinks back in time at a small
    recurrent scale and grows at a large one, the LSTM's changes less, and every curve is
    jax.grad's; the picture, metrics.json and reproduce's README line are written."""
    m = vanishing_gradients.main(["--steps", "12", "--scales", "0.5", "3", "--out", str(tmp_path)],
                                 log=lambda *a: None)
    rnn, lstm = m["results"]["rnn"], m["results"]["lstm"]
    assert rnn["0.5"]["first_over_last"] < 1e-4 and rnn["3"]["first_over_last"] > 10
    assert lstm["0.5"]["first_over_last"] > 100 * rnn["0.5"]["first_over_last"]
    assert lstm["3"]["first_over_last"] < rnn["3"]["first_over_last"] / 10
    assert all(len(r["norms"]) == 12 for r in (*rnn.values(), *lstm.values()))
    assert m["max_rel_diff_vs_autodiff"] < 1e-4
    assert (tmp_path / "vanishing_gradients" / "gradient_norms.png").is_file()
    summary = reproduce.sweeps_summary(tmp_path)
    assert "- **Vanishing and exploding gradients** (`vanishing_gradients/gradient_norms.png`: 64 hidden" in summary
