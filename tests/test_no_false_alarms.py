"""No false alarms on correct code nobody here wrote: the cases where JAX's own functions
raised false alarms through the public `check`, replayed one by one (singular matrices,
repeated eigenvalues, a saturated softmax), beside planted mistakes that the judgement which
accepts them must still fail."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnets.gradcheck import check
from jaxnets.gradcheck.case import Case, save_case

jax.config.update("jax_enable_x64", True)

_rng = np.random.default_rng(0)
X = _rng.standard_normal((4, 5))
A = _rng.standard_normal((4, 4)) + 4 * np.eye(4)
SPD = A @ A.T
B = _rng.standard_normal(4)


def replay(f, args, cot, tmp_path, name, values="ties", example=None):
    """`check` on exactly one case: `args` with output cotangent `cot` (`example`: another
    valid call of the same shapes, where `args` is not one)."""
    path = str(tmp_path / f"{name}.npz")
    save_case(path, Case(0, tuple(args), {}, cot, {"values": values, "upstream": "random", "example": 0}), name)
    return check(f, *(example or args), name=name, replay=path)


def fd_row(report):
    return next(r for k, r in report.rows.items() if k.endswith("~ finite differences") and "second" not in k)


# ------------------------------------------------------------- singular points: DOMAIN

SINGULAR = np.array([[-0.75, -0.75, -0.75, -0.75], [-0.75, -0.75, -0.75, -0.75],
                     [1.25, 1.25, 1.25, -1.25], [1.25, 1.25, -1.25, -1.25]])


@pytest.mark.parametrize("name,f,cot", [
    ("inv", jnp.linalg.inv, np.outer(np.eye(4)[3], np.eye(4)[2])),
    ("slogdet", lambda a: jnp.linalg.slogdet(a)[1], np.asarray(1.4511834574730937)),
])
def test_a_singular_matrix_is_outside_the_domain(tmp_path, name, f, cot):
    report = replay(f, (SINGULAR,), cot, tmp_path, name)
    assert report.status == "domain", report.text()
    assert "singular" in fd_row(report).findings[0].note


REPEATED = np.array([[1.75, 1.75, -0.25, -0.25], [1.75, 1.75, -0.25, -0.25],
                     [0.25, 0.25, -1.25, -1.25], [0.25, 0.25, -1.25, -1.25]])
NEAR_REPEATED = np.array([[1.25, 1.25, 1.75, 1.75], [1.25, 1.25, 1.75, 1.75],
                          [0.25, 0.25, -0.25, -0.25], [0.25, 0.25, -0.25, -0.25]])


def test_eigenvectors_at_repeated_eigenvalues_are_outside_the_domain(tmp_path):
    ones = (np.ones(4), np.ones((4, 4)))
    report = replay(jnp.linalg.eigh, (REPEATED,), ones, tmp_path, "eigh", example=(SPD,))
    assert report.status == "domain", report.text()
    cot = tuple(np.random.default_rng(51).standard_normal(s) for s in ((4,), (4, 4)))
    report = replay(jnp.linalg.eigh, (NEAR_REPEATED,), cot, tmp_path, "eigh_near")
    assert report.status != "fail", report.text()
    assert fd_row(report).count("domain"), report.text()


@jax.custom_jvp
def inv_transposed(a):
    return jnp.linalg.inv(a)


@inv_transposed.defjvp
def _inv_transposed_jvp(primals, tangents):
    (a,), (da,) = primals, tangents
    ai = jnp.linalg.inv(a)
    return ai, -ai @ da.T @ ai  # planted: da transposed


@jax.custom_jvp
def eigvalsh_scaled(a):
    return jnp.linalg.eigvalsh(a)


@eigvalsh_scaled.defjvp
def _eigvalsh_scaled_jvp(primals, tangents):
    (a,), (da,) = primals, tangents
    w, v = jnp.linalg.eigh(a)
    # planted: 200 times too large, a value "far beyond finite differences" that stays put
    return w, 200.0 * jnp.einsum("ji,jk,ki->i", v, (da + da.T) / 2, v)


def test_planted_mistakes_at_regular_points_still_fail(tmp_path):
    report = replay(inv_transposed, (A,), np.random.default_rng(1).standard_normal((4, 4)), tmp_path, "inv_t",
                    values="normal")
    assert fd_row(report).status == "fail", report.text()
    report = replay(eigvalsh_scaled, (SPD,), np.random.default_rng(2).standard_normal(4), tmp_path, "eig_x200",
                    values="normal")
    assert fd_row(report).status == "fail", report.text()


# -------------------------------------------------- a saturated softmax: one rounding floor

def test_saturated_softmax_rounding_is_not_a_mistake(tmp_path):
    rng = np.random.default_rng(33)
    large = 1000.0 * rng.standard_normal((4, 5))
    report = replay(jax.nn.softmax, (large,), rng.standard_normal((4, 5)), tmp_path, "softmax_large", "large")
    assert report.rows["forward ~ reverse (dot product)"].status == "pass", report.text()
    normal = np.random.default_rng(35).standard_normal((4, 5))
    report = replay(jax.nn.softmax, (normal,), np.ones((4, 5)), tmp_path, "softmax_ones", "normal")
    assert report.rows["second order ~ finite differences"].status == "pass", report.text()
