"""No false alarms on correct code nobody here wrote: JAX's own differentiable functions and
optax's `projection_simplex` (a custom_jvp, used unmodified) through the public `check`, with
default options but few cases. Then the cases that raised false alarms, replayed one by one
(ties where several pieces meet, singular matrices, repeated eigenvalues, saturated softmaxes),
each beside a planted mistake that the judgement which accepts them must still fail."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnets.gradcheck import check
from jaxnets.gradcheck.case import Case, save_case

jax.config.update("jax_enable_x64", True)

_rng = np.random.default_rng(0)
X = _rng.standard_normal((4, 5))
A = _rng.standard_normal((4, 4)) + 4 * np.eye(4)
SPD = A @ A.T
B = _rng.standard_normal(4)


def chol_solve(s, b):
    return jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(s), True), b)


CORPUS = {
    "optax projection_simplex": (optax.projections.projection_simplex, (_rng.standard_normal(6),)),
    "jax.nn.softmax": (jax.nn.softmax, (X,)),
    "jax.nn.log_softmax": (jax.nn.log_softmax, (X,)),
    "jnp.linalg.inv": (jnp.linalg.inv, (A,)),
    "jnp.linalg.slogdet": (lambda a: jnp.linalg.slogdet(a)[1], (A,)),
    "jnp.linalg.det": (jnp.linalg.det, (A,)),
    "jnp.linalg.eigh": (jnp.linalg.eigh, (SPD,)),
    "jnp.linalg.eigvalsh": (jnp.linalg.eigvalsh, (SPD,)),
    "cholesky solve": (chol_solve, (SPD, B)),
    "gammaln": (jax.scipy.special.gammaln, (np.abs(X) + 0.5,)),
    "erf": (jax.scipy.special.erf, (X,)),
    "logsumexp": (lambda v: jax.scipy.special.logsumexp(v, axis=-1), (X,)),
    "jnp.sort": (jnp.sort, (X,)),
    "jnp.max": (lambda v: jnp.max(v, axis=-1), (X,)),
}


@pytest.mark.parametrize("name", list(CORPUS))
def test_correct_functions_never_fail(name):
    """Seven cases: one of each value kind (ties, zeros and large values among them)."""
    f, example = CORPUS[name]
    report = check(f, *example, cases=7, name=name)
    assert report.status != "fail", report.text()


def replay(f, args, cot, tmp_path, name, values="ties", example=None):
    """`check` on exactly one case: `args` with output cotangent `cot` (`example`: another
    valid call of the same shapes, where `args` is not one)."""
    path = str(tmp_path / f"{name}.npz")
    save_case(path, Case(0, tuple(args), {}, cot, {"values": values, "upstream": "random", "example": 0}), name)
    return check(f, *(example or args), name=name, replay=path)


def fd_row(report):
    return next(r for k, r in report.rows.items() if k.endswith("~ finite differences") and "second" not in k)


# ------------------------------------------------- several pieces meet: one piece's derivative

TIED_SIMPLEX = np.array([1.25, 0.25, 1.75, 1.25, 1.75, 0.25])
SIMPLEX_COT = np.array([0.0564317, 0.5592453, 0.5142649, -1.3003138, -0.8171256, 0.3308682])


@jax.custom_jvp
def simplex_wrong_sign(v):
    return optax.projections.projection_simplex(v)


@simplex_wrong_sign.defjvp
def _simplex_wrong_sign_jvp(primals, tangents):
    (v,), (dv,) = primals, tangents
    out = optax.projections.projection_simplex(v)
    supp = out > 0
    # planted: the mean of the support's tangent added, not subtracted
    return out, supp * dv + (jnp.dot(supp, dv) / jnp.count_nonzero(supp)) * supp


def test_projection_simplex_at_tied_inputs_follows_one_adjacent_piece(tmp_path):
    # entries 0 and 3 tie at the threshold: optax's JVP keeps both out of the support, a piece
    # that moving either entry alone never reaches
    report = replay(optax.projections.projection_simplex, (TIED_SIMPLEX,), SIMPLEX_COT, tmp_path, "simplex")
    row = fd_row(report)
    assert row.status == "ambiguous", report.text()
    assert "piece" in row.findings[0].note, report.text()
    assert any(c == "piece" for c in row.findings[0].conventions)


def test_projection_simplex_with_a_wrong_sign_still_fails_at_the_ties(tmp_path):
    report = replay(simplex_wrong_sign, (TIED_SIMPLEX,), SIMPLEX_COT, tmp_path, "simplex_wrong")
    assert fd_row(report).status == "fail", report.text()


TIED_SORT = np.array([[-0.75, -0.75, -0.75, -0.25, -0.25], [-0.75, -0.25, -0.75, -0.75, -0.25],
                      [0.75, 0.75, 0.75, 0.75, 0.75], [0.75, 0.75, 0.75, 0.75, 0.75],
                      [0.75, 0.75, -1.25, -1.25, 0.75]])
SORT_COT = np.random.default_rng(9).standard_normal(TIED_SORT.shape)


@jax.custom_jvp
def sort_wrong_piece(x):
    return jnp.sort(x)


@sort_wrong_piece.defjvp
def _sort_wrong_piece_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    perm = jnp.argsort(x, axis=-1)
    # planted: the tangent of each row's second-smallest entry at the first place and the
    # smallest at the second, a piece that needs the two to cross even where they differ
    perm = perm.at[..., :2].set(perm[..., 1::-1])
    return jnp.sort(x), jnp.take_along_axis(dx, perm, axis=-1)


def test_sort_with_three_tied_entries_follows_one_adjacent_piece(tmp_path):
    # a stable sort keeps the middle of three tied entries in the middle place: outside that
    # entry's one-sided slopes (moving it alone takes it to the first or the last place)
    report = replay(jnp.sort, (TIED_SORT,), SORT_COT, tmp_path, "sort")
    assert report.status != "fail", report.text()


def test_sort_with_a_wrong_piece_still_fails_at_the_ties(tmp_path):
    report = replay(sort_wrong_piece, (TIED_SORT,), SORT_COT, tmp_path, "sort_wrong")
    assert fd_row(report).status == "fail", report.text()


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


def test_forward_mode_rows_share_the_floor(tmp_path):
    # the tutorial's log1pexp JVP, 1 - 1 / (1 + exp(x)), is 2.54e-16 at x = -33 where jax.jvp of
    # the primal gives 2.52e-16: rounding of a cancellation of terms of the tangent's size
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(__file__), "realcode", "tut_log1pexp_custom_jvp.py")
    spec = importlib.util.spec_from_file_location("tut_log1pexp_custom_jvp", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x = np.array([-33.009721498468416, -343.2049467417525, -229.5890067549545, -1254.235299491404, -1990.0950288833235])
    report = replay(module.log1pexp, (x,), np.ones(5), tmp_path, "log1pexp", "large")
    assert report.rows["jvp rule ~ autodiff jvp"].status != "fail", report.text()
    assert report.rows["jvp rule ~ finite differences"].status != "fail", report.text()


def test_a_key_bias_no_softmax_sees_is_rounding_measured_by_linearity():
    # the transformer block at seed 8, case 45 (small integers): the backward's key-bias
    # gradient, exactly 0 in exact arithmetic, is -1.86e-13 beside autodiff's 3.8e-14 (1.06e-10
    # relative at the scale floor); ulp moves leave the saturated softmax saturated, and only
    # g(u + w) - g(w) against g(u) sees that rounding
    from jaxnets.conformance import public_api as pa
    from jaxnets.gradcheck.api import check_layer

    args = pa.op_layer("transformer_block")
    group = pa.example_groups(args.examples)[0]
    report = check_layer(args.forward, args.backward, group, reference=args.reference, name="transformer_block",
                         seed=8, cases=46, rows=["autodiff"])
    assert report.status != "fail", report.text()
