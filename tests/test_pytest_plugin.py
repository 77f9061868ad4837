"""`pytest --gradcheck PATH`: the checker's pytest plugin (an entry point, no conftest), run as a
user would run it, in a separate pytest process."""
import os
import re
import subprocess
import sys
import textwrap

import pytest

REAL = os.path.join(os.path.dirname(__file__), "realcode")


def run_pytest(*args, cwd):
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "-q", "-rA",
                           "--gradcheck", "--gradcheck-cases", "4", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=900)
    return proc, {item: outcome for outcome, item in re.findall(r"^(PASSED|FAILED|ERROR) (\S+)", proc.stdout, re.M)}


def write(folder, name, text):
    (folder / name).write_text(textwrap.dedent(text))


def test_every_rule_in_a_folder_is_an_item_of_its_own(tmp_path):
    write(tmp_path, "rules.py", """
        import jax
        import jax.numpy as jnp

        @jax.custom_vjp
        def good(x):
            return jnp.sin(x)

        good.defvjp(lambda x: (jnp.sin(x), jnp.cos(x)), lambda c, g: (c * g,))

        @jax.custom_vjp
        def flipped(x):
            return jnp.sin(x)

        flipped.defvjp(lambda x: (jnp.sin(x), jnp.cos(x)), lambda c, g: (-c * g,))

        def flipped_example():
            return (jnp.ones((3, 4)),)

        def scale_forward(x, w):
            return x * w, (x, w)

        def scale_backward(dout, cache):
            x, w = cache
            return dout * w, (dout * x).sum(axis=0)
    """)
    # good's example from the file beside it, scale's from the command line: rules.py is not edited
    write(tmp_path, "rules_examples.py", """
        import numpy as np

        def good_example():
            return (np.ones((2, 5)),)
    """)
    write(tmp_path, "test_own.py", """
        import jax
        import jax.numpy as jnp
        import numpy as np

        def test_a_rule_with_its_own_example(gradcheck):
            @jax.custom_vjp
            def square(x):
                return x * x

            square.defvjp(lambda x: (x * x, x), lambda x, g: (2 * x * g,))
            assert gradcheck(square, np.ones(3)).ok
    """)
    proc, items = run_pytest(".", "--gradcheck-example", "scale_backward=3x4,4", cwd=tmp_path)
    assert items == {"rules.py::good": "PASSED", "rules.py::flipped": "FAILED",
                     "rules.py::scale_backward": "PASSED", "test_own.py::test_a_rule_with_its_own_example": "PASSED"}, \
        proc.stdout[-3000:] + proc.stderr[-2000:]
    # the failure message is the checker's report, with the case's re-run command
    assert "flipped: FAIL" in proc.stdout and "bwd ~ autodiff" in proc.stdout and "the sign is flipped" in proc.stdout
    assert proc.returncode == 1


def test_real_rules_as_written_with_examples_beside_them():
    files = ["tut_sin_times_y_custom_vjp.py", "tut_point_pytree_custom_vjp.py", "tut_x2y_defjvps_none.py"]
    proc, items = run_pytest(*files, cwd=REAL)
    # defjvps(..., None) says f(x, y) = x**2 * y does not depend on y: the checker says it does
    assert items == {"tut_sin_times_y_custom_vjp.py::f": "PASSED", "tut_point_pytree_custom_vjp.py::f": "PASSED",
                     "tut_x2y_defjvps_none.py::f": "FAILED"}, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_without_the_flag_nothing_is_collected_from_plain_files():
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "-q",
                           "--collect-only", "tut_sin_times_y_custom_vjp.py"],
                          capture_output=True, text=True, cwd=REAL, timeout=300)
    assert "no tests" in proc.stdout + proc.stderr and proc.returncode == 5


def test_assert_grads_on_a_file_raises_as_the_command_exits(tmp_path):
    from jaxnets.gradcheck import assert_grads

    assert_grads(os.path.join(REAL, "tut_sin_times_y_custom_vjp.py"), cases=4)  # examples beside it: PASS
    with pytest.raises(AssertionError, match="FAIL"):
        assert_grads(os.path.join(REAL, "tut_x2y_defjvps_none.py"), cases=4)
    empty = tmp_path / "constants.py"
    empty.write_text("EPS = 1e-5\n")
    with pytest.raises(AssertionError, match="nothing judged"):
        assert_grads(str(empty))
