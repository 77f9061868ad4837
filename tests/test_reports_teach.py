"""What a report shows a user: evidence about the entry it names, the plainest failing case,
the cases behind an AMBIGUOUS verdict, PRNG keys left alone, a NaN rule failed (not refused)."""
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnets.gradcheck import check, load_case, save_case

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples")
X = np.random.default_rng(0).standard_normal((4, 6))


def leaky_forward(x, slope=0.1):
    return jnp.where(x > 0, x, slope * x), (x, slope)


def leaky_backward_forgets_slope(dout, cache):
    x, _ = cache
    return jnp.where(x > 0, dout, 0.0)


def leaky_backward(dout, cache):
    x, slope = cache
    return jnp.where(x > 0, dout, slope * dout)


def test_the_evidence_is_about_the_entry_the_report_names():
    report = check(leaky_forward, X, backward=leaky_backward_forgets_slope, cases=12, leading_sizes=False)
    row = report.rows["backward ~ autodiff"]
    line = next(ln for ln in report.text().splitlines() if ln.startswith("FAIL backward ~ autodiff"))
    assert f"finite differences at {row.worst.where()} (" in line, line


def test_the_case_shown_is_a_plain_one_when_a_plain_one_fails():
    report = check(leaky_forward, X, backward=leaky_backward_forgets_slope, cases=12, leading_sizes=False)
    for name, row in report.rows.items():
        if row.status == "fail":
            assert "normal values, random upstream" in report.label(row.worst.case), (name, report.label(row.worst.case))


def test_ambiguous_rows_list_their_cases():
    report = check(leaky_forward, X, backward=leaky_backward, cases=12, leading_sizes=False)
    assert report.status == "ambiguous", report.text()
    listed = re.findall(r"ambiguous on (\d+) case\(s\): (.*)", report.text())
    assert listed and all("values" in cases for _, cases in listed), report.text()


def _noisy():
    @jax.custom_vjp
    def noisy(x, key):
        return x * jax.random.uniform(key, x.shape)

    def fwd(x, key):
        m = jax.random.uniform(key, x.shape)
        return x * m, m

    noisy.defvjp(fwd, lambda m, g: (g * m, None))
    return noisy


@pytest.mark.parametrize("key", [jax.random.PRNGKey(3), jax.random.key(3)], ids=["legacy", "typed"])
def test_prng_keys_pass_through_untouched(key, tmp_path):
    report = check(_noisy(), np.ones((3, 4)), key, cases=6, leading_sizes=False)
    assert report.ok, report.text()
    for case in report.cases:
        got = case.args[1]
        assert got.dtype == key.dtype and np.array_equal(jax.random.key_data(got) if got.dtype != np.uint32 else got,
                                                         jax.random.key_data(key) if key.dtype != np.uint32 else key)
    save_case(tmp_path / "c.npz", report.cases[0], "noisy")
    again = load_case(tmp_path / "c.npz", "noisy").args[1]
    assert again.dtype == key.dtype


def test_a_rule_that_is_nan_on_the_example_fails_with_its_case(tmp_path):
    rule = tmp_path / "root.py"
    rule.write_text("""import jax, jax.numpy as jnp

@jax.custom_vjp
def root(x):
    return jnp.sqrt(x)

root.defvjp(lambda x: (jnp.sqrt(x), x), lambda x, g: (jnp.where(x == 0, jnp.nan, 0.5 / jnp.sqrt(x)) * g,))
""")
    proc = subprocess.run([sys.executable, "-m", "jaxnets.gradcheck", f"{rule}:root", "--example", "4x6:nonnegative",
                           "--cases", "8", "--save-dir", str(tmp_path / "cases")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL bwd: runs, finite" in proc.stdout and "the domain's boundary" in proc.stdout
    rerun = re.search(r"re-run just that case: (.*)", proc.stdout)[1]
    assert "--example 4x6:nonnegative" in rerun and "--replay" in rerun
    again = subprocess.run([sys.executable, *rerun.split()[1:]] if rerun.startswith("python") else rerun.split(),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 1 and "FAIL bwd: runs, finite" in again.stdout, again.stdout + again.stderr
