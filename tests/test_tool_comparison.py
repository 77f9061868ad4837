"""experiments.tool_comparison on two of its mistakes (few jaxnets cases, to stay cheap), one of
first order and one of second: the jaxnets column catches both, no tool raises a false alarm
on the correct versions, and the other columns see what their design lets them see. The full
table is a command (`python -m experiments.tool_comparison`), not a test."""
import pytest

from experiments import tool_comparison

NAMES = ("tanh_grad_from_preactivation", "custom_vjp_stop_gradient_residual")


@pytest.fixture(scope="module")
def result():
    return tool_comparison.run(log=lambda line: None, names=NAMES, cases=4)


def test_jaxnets_catches_each_mistake_and_passes_the_correct_versions(result):
    rows = result["mistakes"]
    assert list(rows) == list(NAMES)
    for name, row in rows.items():
        assert row["jaxnets"]["verdict"] == "caught", (name, row["jaxnets"])
        assert row["jaxnets"]["correct"]["outcome"] == "pass", (name, row["jaxnets"]["correct"])
        assert row["check_grads"]["correct"]["outcome"] == "pass", (name, row["check_grads"]["correct"])


def test_check_grads_at_order_2_sees_both(result):
    rows = result["mistakes"]
    assert rows["tanh_grad_from_preactivation"]["check_grads"]["verdict"] == "caught"
    assert rows["custom_vjp_stop_gradient_residual"]["check_grads"]["verdict"] == "caught"


def test_the_markdown_table_has_a_row_per_mistake_and_the_false_alarm_row(result):
    text = tool_comparison.to_markdown(result)
    for name in NAMES:
        assert f"| `{name}` |" in text
    row = next(line for line in text.splitlines() if line.startswith("| **correct versions**"))
    jaxnets, check_grads = row.split(" | ")[2:4]
    assert jaxnets.startswith("0/2 false alarms") and check_grads.startswith("0/2 false alarms"), row


def test_torch_gradcheck_misses_the_second_order_mistake_that_gradgradcheck_catches(result):
    pytest.importorskip("torch")
    rows = result["mistakes"]
    residual = rows["custom_vjp_stop_gradient_residual"]
    assert residual["gradcheck"]["verdict"] == "missed"
    assert residual["gradgradcheck"]["verdict"] == "caught"
    assert rows["tanh_grad_from_preactivation"]["gradcheck"]["verdict"] == "caught"
    for name, row in rows.items():
        for tool in ("gradcheck", "gradgradcheck"):
            assert row[tool]["correct"]["outcome"] == "pass", (name, tool, row[tool]["correct"])
