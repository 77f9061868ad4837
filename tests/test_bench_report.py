"""The benchmark's verdicts from a made-up run: each target met or missed by the right factor."""
import pytest

from experiments.bench import report


def _row(w, impl, kind, seconds, mode=None, unit="ms/iter", note=""):
    return {"workload": w, "impl": impl, "kind": kind, "mode": mode, "seconds": seconds,
            "value": seconds * 1e3, "unit": unit, "note": note}


def _result(torch=True):
    # limit for A: max(2e9 FLOPs / 100 GFLOP/s, 0) = 20 ms
    rows = [
        _row("A", "numpy doc", "numpy-doc", 0.2),
        _row("A", "manual jit", "jax-mode", 0.04, "manual"),
        _row("A", "autodiff jit", "jax-mode", 0.05, "autodiff"),
        _row("A", "fused manual", "fused", 0.03, "manual"),
        _row("A", "fused autodiff", "fused", 0.025, "autodiff"),
        _row("E", "batch norm (4, 4): jaxnets hand-written pair", "layer", 1e-3, "manual", "ms/call"),
        _row("E", "batch norm (4, 4): jaxnets autodiff", "layer-autodiff", 2e-3, "autodiff", "ms/call"),
        _row("E", "dropout (4, 4): jaxnets hand-written pair", "layer", 1.1e-3, "manual", "ms/call",
             report.SAME_PROGRAM),
        _row("E", "dropout (4, 4): jaxnets autodiff", "layer-autodiff", 1e-3, "autodiff", "ms/call"),
    ]
    if torch:
        rows += [_row("A", "PyTorch", "torch", 0.09),
                 _row("E", "batch norm (4, 4): PyTorch CPU autograd", "torch", 0.5e-3, unit="ms/call")]
    return {"rows": rows, "work": {"A": {"flops": 2e9, "bytes_min": 0.0}},
            "limits": {"matmul_gflops": 100.0, "read_gbps": 10.0, "matmul_gflops_jax": 100.0,
                       "matmul_gflops_numpy": 90.0, "matmul_n": 1024, "read_x_float32_ms": 1.0,
                       "read_x_uint8_ms": 0.5}}


def _targets(summary):
    return {v["target"]: v for v in summary["targets"]}


def test_verdicts_against_each_target():
    result = _result()
    s = report.summarise(result)
    t = _targets(s)
    pct = t["A: % of the machine's limit"]
    assert s["A"]["best_jaxnets"] == "fused autodiff"
    assert pct["measured"] == pytest.approx(80.0) and pct["met"]
    torch = t["A: times PyTorch CPU's speed"]
    assert torch["measured"] == pytest.approx(3.6) and torch["met"] and torch["goal"] == ">= 2x"
    layer = t["E: batch norm (4, 4), hand-written pair / PyTorch"]
    assert layer["measured"] == pytest.approx(2.0) and not layer["met"] and layer["missed_by"] == pytest.approx(2.0)
    assert t["E: batch norm (4, 4), hand-written pair / autodiff"]["met"]
    # one compiled program: met whatever the noise says, and the verdict says why
    same = t["E: dropout (4, 4), hand-written pair / autodiff"]
    assert same["measured"] == pytest.approx(1.1) and same["met"] and same["best"] == report.SAME_PROGRAM
    # the worst of both paths: the fused loop here (1.2), not the jit path (0.8)
    ratio = t["manual / autodiff (worst model and path)"]
    assert ratio["measured"] == pytest.approx(1.2) and ratio["missed_by"] == pytest.approx(1.2)
    assert "fused loop" in ratio["best"]
    table = report.format_table({**result, "summary": s})
    assert "| E: batch norm (4, 4), hand-written pair / PyTorch | <= 1 | 2x |" in table
    assert "missed by 2.00x" in table


def test_without_torch_the_comparisons_say_not_measured():
    s = report.summarise(_result(torch=False))
    t = _targets(s)
    assert t["A: times PyTorch CPU's speed"]["met"] is None
    assert t["E: batch norm (4, 4), hand-written pair / PyTorch"]["met"] is None
    assert "not measured" in report.format_table({**_result(torch=False), "summary": s})
