"""Every command line in the ```bash blocks of the README and the documentation (docs/*.md) runs as shown, with tiny sizes added (a few
iterations, small nets): each either runs here or is listed in ELSEWHERE with where it is run
or why it cannot be (installs, other hardware), so a command added to or changed in the README
without a way to run it fails this test.

Each command runs in a fresh folder (as on a fresh clone: `runs/` empty), in-process through
`experiments.cli.main` unless it needs its own interpreter (environment variables that JAX reads
at start-up, several processes).
"""
import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from experiments import cli, reproduce
from experiments.runs import has_files
from jaxnets.data import FASHION_MNIST_DIR, load_sample, write_idx

ROOT = Path(__file__).resolve().parents[1]

#: commands not run here, and where they are run or why not
ELSEWHERE = {
    "uv run --extra test --extra docs pytest": "the test suite itself (.ci/run runs it)",
    "uv run jaxnets gradcheck my_layer.py:my_layer": "tests/test_gradcheck_cli.py runs it on examples/leaky_relu.py",
    "uv run jaxnets gradcheck my_rules.py:f --example 3x4,3x4":
        "tests/test_gradcheck_cli.py runs it on JAX's tutorial custom_vjp (tests/realcode)",
    "uv run jaxnets gradcheck cs231n/layers.py":
        "tests/test_gradcheck_cli.py runs it on tests/realcode/cs231n_style_layers.py",
    "uv run pytest --gradcheck tests/realcode":
        "tests/test_pytest_plugin.py runs the plugin on three of tests/realcode's files and on a folder of its own",
    "uv run jaxnets gradcheck": "the full equivalence table (minutes); its engine is the equivalence suite's "
                                "(tests/test_ops_equivalence.py, test_models_equivalence.py, test_mutants.py), the "
                                "command's options are tests/test_gradcheck_cli.py's",
    "pip install -e '.[bench]' --extra-index-url https://download.pytorch.org/whl/cpu && jaxnets bench":
        "installs PyTorch (network); the bench itself runs below",
    "uv pip install torch --index-url https://download.pytorch.org/whl/cpu && uv run jaxnets bench":
        "installs PyTorch (network); the bench itself runs below",
    'pip install -U "jax[cuda13]"': "an install for NVIDIA GPUs",
    'pip install -U "jax[tpu]"': "an install for Cloud TPUs",
    "pip install -e .": "the install every run here already uses",
    "uv run jaxnets train char_lm --cell lstm":
        "tests/test_sequence_training.py runs `jaxnets train char_lm` at tiny sizes, then samples from its run",
    "uv run jaxnets sample runs/char_lm_lstm --prompt MA --temperature 0.8":
        "tests/test_sequence_training.py runs `jaxnets sample` with --prompt and --temperature on its char_lm run",
    "uv run jaxnets train transformer_lm":
        "tests/test_transformer_lm.py runs `jaxnets train transformer_lm` at tiny sizes, then samples from its run",
    "uv run jaxnets sample runs/transformer_lm --prompt MA":
        "tests/test_transformer_lm.py runs `jaxnets sample` with --prompt on its transformer_lm run",
}

#: options added to make each command small (appended, so the command's own stay as written)
SMALL = {
    "occupancy": ["--iterations", "3"],
    "digits": ["--iterations", "3"],
    "two_layer": ["--iterations", "3"],
    "convnet": ["--iterations", "2"],
    "deep_convnet": ["--iterations", "2", "--filters", "2", "--hidden", "4", "--batch-size", "8"],
    "normalization": ["--scales", "2", "--epochs", "1"],
    "dropout": ["--epochs", "1"],
    "filters": [],
    "vanishing_gradients": ["--steps", "6", "--scales", "0.5", "3"],
    "bench": ["--quick", "--workloads", "D", "--no-torch"],
    "char_lm": ["--iterations", "2", "--hidden", "4", "--embed", "2"],
    "row_lstm": ["--iterations", "2", "--hidden", "4"],
    "transformer_lm": ["--iterations", "2", "--dim", "8", "--heads", "2", "--blocks", "1", "--ffn", "8"],
}


#: the pages whose bash blocks are run: the README and every documentation page
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))


def readme_commands():
    """Every command line of the pages' bash blocks, trailing comments removed, in order, each
    once."""
    lines = []
    for page in PAGES:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
            for line in block.splitlines():
                line = re.sub(r"\s+#.*$", "", line).strip()
                if line and not line.startswith("#") and line not in lines:
                    lines.append(line)
    return lines


def split(line):
    """(environment, jaxnets argv) of a command line: `VAR=value` words first, `uv run` dropped."""
    words = shlex.split(line)
    env = {}
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    if words[:2] == ["uv", "run"]:
        words = words[2:]
    assert words[0] == "jaxnets", line
    return env, words[1:]


def small(argv, tiny):
    """argv with tiny sizes; Fashion-MNIST, where it is not installed, replaced by tiny IDX files
    of the same format."""
    argv = list(argv)
    if "--data" in argv and argv[argv.index("--data") + 1] == "fashion-mnist" and not FASHION_MNIST_DIR.is_dir():
        argv[argv.index("--data") + 1] = f"idx:{tiny}"
    name = argv[1] if argv[0] == "train" else argv[0]
    return argv + SMALL.get(name, [])


def test_every_readme_command_is_run_here_or_accounted_for():
    commands = readme_commands()
    assert set(ELSEWHERE) <= set(commands), f"ELSEWHERE lists commands the README no longer has: " \
                                            f"{sorted(set(ELSEWHERE) - set(commands))}"
    for line in commands:
        if line not in ELSEWHERE:
            env, argv = split(line)
            assert argv[0] in ("train", "predict", "reproduce", "bench"), line
            assert argv[0] != "train" or argv[1] in SMALL, f"no tiny sizes for {line!r}"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """1300 training and 100 test images in IDX files (a stand-in for Fashion-MNIST's; 002's
    overfit run takes 1000 of the 1040 left after validation)."""
    d = tmp_path_factory.mktemp("readme_tiny")
    s = load_sample()
    for split_, rows in (("train", slice(0, 1300)), ("t10k", slice(1300, 1400))):
        write_idx(d / f"{split_}-images-idx3-ubyte.gz", s.x_train[rows])
        write_idx(d / f"{split_}-labels-idx1-ubyte.gz", s.y_train[rows].astype(np.uint8))
    return d


#: the runs of `jaxnets reproduce` that run here; the others (run by the `train` commands above
#: and tests/test_experiments.py with the same code) stop where training would start, after their
#: options, output folder, data and model are checked and made
RUN_BY_REPRODUCE = ("000 occupancy", "000 example filters", "vanishing gradients")


class StopBeforeTraining(Exception):
    pass


def tiny_plan(real, tiny):
    """reproduce's plan with tiny sizes; without --fashion, only RUN_BY_REPRODUCE run to the end;
    with --fashion, only the rows it adds (skipped without Fashion-MNIST, as the command does)."""
    shown = {label for label, _, _ in real(False, "sample+mnist-test")}

    def plan(fashion, spec):
        rows = []
        for label, main, own in real(fashion, spec):
            if fashion and label in shown:
                continue
            module = sys.modules[main.__module__]
            if not fashion and label not in RUN_BY_REPRODUCE:
                main = stop_before_training(module, label)
            rows.append((label, main, own + SMALL[module.__name__.rsplit(".", 1)[1]]))
        return rows

    return plan


def stop_before_training(module, label):
    """`module.main`, stopped at its call of `run_experiment` or `train` (nothing written)."""
    def stop(*args, **kwargs):
        raise StopBeforeTraining(label)

    def main(argv, log=print):
        with pytest.MonkeyPatch.context() as mp:
            for name in ("run_experiment", "train"):
                if hasattr(module, name):
                    mp.setattr(module, name, stop)
            with pytest.raises(StopBeforeTraining):
                module.main(argv, log=log)

    main.stands_for = module.main
    return main


class StandsFor(tuple):
    """reproduce.NO_COMPARE that knows a stopped main by the main it stands for."""

    def __contains__(self, main):
        return tuple.__contains__(self, getattr(main, "stands_for", main))


def in_process(argv, capsys):
    status = cli.main(argv)
    captured = capsys.readouterr()
    assert status == 0, f"jaxnets {' '.join(argv)}: status {status}\n{captured.err[-2000:]}"
    return captured.out


def own_process(line):
    """Commands that need their own interpreter: environment variables JAX reads at start-up,
    several processes, or float32 JAX (the bench refuses jax_enable_x64, on in this session)."""
    env, argv = split(line)
    return bool(env) or "--coordinator" in argv or argv[0] == "bench"


IN_PROCESS = [line for line in readme_commands() if line not in ELSEWHERE and not own_process(line)]


@pytest.mark.parametrize("line", IN_PROCESS)
def test_readme_command_runs_as_shown(line, tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _, argv = split(line)
    if argv[0] == "predict":  # its run folder and picture, as the commands before it leave them
        in_process(["train", "digits", "--iterations", "2", "--no-progress"], capsys)
        Image.fromarray(load_sample().x_train[0]).save(tmp_path / "my_digit.png")
    if argv[0] == "reproduce":
        monkeypatch.setattr(reproduce, "plan", tiny_plan(reproduce.plan, tiny))
        monkeypatch.setattr(reproduce, "NO_COMPARE", StandsFor(reproduce.NO_COMPARE))
        # the image runs on 1300 of the sample's images (`--data`, reproduce's own option)
        argv += ["--no-progress"] + ([] if "--fashion" in argv else ["--data", f"idx:{tiny}"])
    out = in_process(small(argv, tiny), capsys)
    assert "Traceback" not in out
    if argv[0] == "reproduce" and "--fashion" not in argv:
        assert (tmp_path / "runs" / "reproduce.json").is_file() and "| 000 occupancy 5-5-1 |" in out
        assert "Skipped" not in out
        assert not list((tmp_path / "runs").glob("*.partial")), "every run finished and moved into place"
    if argv[0] == "train":
        assert [p.name for p in (tmp_path / "runs").iterdir() if has_files(p)], "a run folder was written"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_readme_commands_that_need_their_own_processes(tmp_path):
    """`XLA_FLAGS=... jaxnets train two_layer --data-parallel` (2 CPU devices), the two
    processes of 'Several machines' (flags for one, the environment variables for the other) on
    127.0.0.1, and `jaxnets bench`, all at once."""
    lines = sorted({line for line in readme_commands() if line not in ELSEWHERE and own_process(line)})
    assert len(lines) == 4 and sum("--coordinator" in line for line in lines) == 2, lines
    address = f"127.0.0.1:{free_port()}"
    procs = []
    for i, line in enumerate(lines):
        env, argv = split(line.replace("10.0.0.1:1234", address))
        if "--process-id" in argv and argv[argv.index("--process-id") + 1] == "1":  # the README's other form
            argv = argv[:argv.index("--coordinator")]
            env.update(JAX_COORDINATOR_ADDRESS=address, JAX_NUM_PROCESSES="2", JAX_PROCESS_ID="1")
        folder = tmp_path / ("data_parallel" if "--data-parallel" in argv else "bench" if argv[0] == "bench"
                             else "processes")
        folder.mkdir(exist_ok=True)
        full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        full.pop("JAX_ENABLE_X64", None)
        procs.append((line, folder, subprocess.Popen(
            [sys.executable, "-m", "experiments.cli", *small(argv, None)] + ([] if argv[0] == "bench" else ["--no-progress"]),
            cwd=folder, env=full,
            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))
    for line, folder, proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{line}: status {proc.returncode}\n{out[-3000:]}"
        written = "benchmark/benchmark.json" if folder.name == "bench" else "002_two_layer_sample+mnist-test/metrics.json"
        assert "Traceback" not in out and (folder / "runs" / written).is_file(), out[-3000:]
    data_parallel = next(folder for line, folder, _ in procs if "--data-parallel" in line)
    metrics = json.loads((data_parallel / "runs" / "002_two_layer_sample+mnist-test" / "metrics.json").read_text())
    assert metrics["data_parallel"] == {"devices": 2, "processes": 1} and metrics["grad_mode"] == "manual"
