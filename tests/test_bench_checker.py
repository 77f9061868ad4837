"""Workload G (the gradient checker beside check_grads): it runs, and its verdicts and table
come out right from made-up numbers. No time is asserted: the benchmark measures, tests don't."""
from experiments.bench import checker, report
from experiments.bench.workloads import ALL


def _made_up():
    rules = {name: {"check_cold": 3.0, "check_grads_cold": 1.5, "check_warm": 0.1, "check_grads_warm": 0.04,
                    "ok": True} for name in checker.RULES}
    rules[checker.RULES[2]].update(check_cold=6.0, check_warm=0.4)  # the worst rule on both
    for r in rules.values():
        r["warm_ratio"] = r["check_warm"] / r["check_grads_warm"]
        r["cold_ratio"] = r["check_cold"] / r["check_grads_cold"]
    return {"rules": rules, "file": {"path": checker.CS231N_FILE, "seconds": 8.0, "exit": 1}}


def test_the_verdicts_name_the_worst_rule_and_the_factor_missed():
    got = {v["target"]: v for v in checker.verdicts(_made_up())}
    warm = got["G: default check / check_grads(order=2), warm (worst rule)"]
    cold = got["G: default check / check_grads(order=2), cold (worst rule)"]
    assert warm["best"] == cold["best"] == checker.RULES[2]
    assert not warm["met"] and abs(warm["missed_by"] - 10.0 / checker.WARM_RATIO) < 1e-12
    assert not cold["met"] and abs(cold["missed_by"] - 4.0 / checker.COLD_RATIO) < 1e-12
    assert got["G: jaxnets gradcheck on a cs231n layers.py"]["met"]
    assert checker.verdicts(None) == [] and checker.table_lines(None) == []


def test_the_report_carries_the_workload():
    result = {"rows": [], "work": {}, "checker": _made_up(),
              "limits": {"matmul_gflops": 100.0, "read_gbps": 10.0, "matmul_gflops_jax": 100.0,
                         "matmul_gflops_numpy": 90.0, "matmul_n": 1024, "read_x_float32_ms": 1.0,
                         "read_x_uint8_ms": 0.5}}
    result["summary"] = report.summarise(result)
    table = report.format_table(result)
    assert "| layer norm 4x6 | 6.00 | 1.50 | 4.0x | 0.400 | 0.040 | 10.0x |" in table
    assert "G: jaxnets gradcheck on a cs231n layers.py" in table and "(exit 1)" in table
    assert checker.LETTER in ALL


def test_one_measurement_runs_in_its_own_process():
    got = checker._measure_in_subprocess(checker.RULES[0], "check", rounds=1)
    assert got["ok"] and set(got) == {"check_cold", "ok", "check_warm", "check_grads_warm"}
    assert min(got["check_cold"], got["check_warm"], got["check_grads_warm"]) > 0
