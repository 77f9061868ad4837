"""No false alarms on correct code nobody here wrote: the cases where JAX's own functions
raised false alarms through the public `check`, replayed one by one (a saturated softmax)."""
import jax
import numpy as np

from jaxnets.gradcheck import check
from jaxnets.gradcheck.case import Case, save_case

jax.config.update("jax_enable_x64", True)


def replay(f, args, cot, tmp_path, name, values="ties", example=None):
    """`check` on exactly one case: `args` with output cotangent `cot` (`example`: another
    valid call of the same shapes, where `args` is not one)."""
    path = str(tmp_path / f"{name}.npz")
    save_case(path, Case(0, tuple(args), {}, cot, {"values": values, "upstream": "random", "example": 0}), name)
    return check(f, *(example or args), name=name, replay=path)


# -------------------------------------------------- a saturated softmax: one rounding floor

def test_saturated_softmax_rounding_is_not_a_mistake(tmp_path):
    rng = np.random.default_rng(33)
    large = 1000.0 * rng.standard_normal((4, 5))
    report = replay(jax.nn.softmax, (large,), rng.standard_normal((4, 5)), tmp_path, "softmax_large", "large")
    assert report.rows["forward ~ reverse (dot product)"].status == "pass", report.text()
    normal = np.random.default_rng(35).standard_normal((4, 5))
    report = replay(jax.nn.softmax, (normal,), np.ones((4, 5)), tmp_path, "softmax_ones", "normal")
    assert report.rows["second order ~ finite differences"].status == "pass", report.text()
