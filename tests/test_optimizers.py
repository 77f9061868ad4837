"""The hand-written optimizers (`jaxnets.training.optimizers`): each follows cs231n's rule
(a NumPy float64 twin of cs231n `optim.py` below), agrees with its optax counterpart over 100
steps wherever the two definitions coincide, and every difference in definition is pinned by
updates worked out by hand; schedules count steps as `optax.sgd(schedule)` does; the state
survives jit with donation, sharding and a key-path round trip; the registry's errors.

Gradients: the MLP loss (`two_layer_net(12, 7, 3, std=0.1)`, manual gradient) on fixed random
data, taken along the optax counterpart's own float64 trajectory; both optimizers of a pair are
then fed that same gradient sequence ("open loop"), so any disagreement is the optimizers' own.
"""
import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnets.grads import value_and_grad
from jaxnets.models import two_layer_net
from jaxnets.training.config import learning_rate_schedule
from jaxnets.training.optimizers import (
    DEFAULT_OPTIMIZER,
    OPTIMIZERS,
    AdamState,
    MomentumState,
    RMSPropState,
    adam,
    make,
    rmsprop,
    sgd_momentum,
)

STEPS = 100
#: float64 agreement where two definitions coincide: they differ only in the order of a few
#: roundings per step (e.g. lr * (m / d) vs (lr * m) / d, or v = mu v - lr dw vs -lr (dw + mu t)),
#: ~1e-16 each. Measured max over 100 steps (jax 0.10.2, optax 0.2.8, x86-64 CPU): 1.0e-15; any
#: real difference in definition shows up at >= 1e-3 (see the tests of the differences).
F64_TOL = 1e-12
#: float32 agreement: a few ulps (eps32 = 1.2e-7) per step from the differently ordered final
#: operations; in the momentum pair the accumulators themselves are computed differently
#: (v = mu v - lr dw vs t = dw + mu t, then -lr t), so the velocity carries past rounding
#: differences, each shrinking by mu per step: up to about eps32 / (1 - mu) = 10 eps32 relative.
#: Measured max over 100 steps (updates and params, all pairs, constant rate and schedule):
#: 4.5e-7 = 3.8 eps32 (momentum 3.0, rmsprop 3.8, adam 1.8 eps32); the bound, 16 eps32
#: (1.9e-6), is that accumulation bound plus a few ulps for the final operations.
F32_TOL = 16 * float(np.finfo(np.float32).eps)

MODEL = two_layer_net(input_size=12, hidden_size=7, num_classes=3, std=0.1)
GRAD_FN = jax.jit(value_and_grad(MODEL, "manual"))
_rng = np.random.default_rng(0)
X = _rng.standard_normal((30, 12))
Y = _rng.integers(0, 3, size=30).astype(np.int32)
PARAMS0 = jax.tree.map(lambda a: np.asarray(a, np.float64), MODEL.init(jax.random.PRNGKey(0)))
# 002's per-epoch decay: step 0 at 0.1, steps 1-3 at 0.09, 4-6 at 0.081, ... (changes often)
SCHEDULE = learning_rate_schedule(0.1, 0.9, 3)


def cast(tree, dtype):
    return jax.tree.map(lambda a: jnp.asarray(a, dtype), tree)


@functools.cache
def gradient_sequence(reference_name):
    """The STEPS gradients (float64, stacked along a leading step axis) seen along the float64
    trajectory of `PAIRS[reference_name]`'s optax optimizer from PARAMS0."""
    optimizer = PAIRS[reference_name][1]()
    params = cast(PARAMS0, jnp.float64)

    def body(carry, _):
        p, state = carry
        _, g = GRAD_FN(p, X, Y)
        updates, state = optimizer.update(g, state, p)
        return (optax.apply_updates(p, updates), state), g

    _, grads = jax.jit(lambda c: jax.lax.scan(body, c, length=STEPS))((params, optimizer.init(params)))
    return jax.tree.map(np.asarray, grads)


def step_of(stacked, t):
    """Step t of a stacked sequence."""
    return jax.tree.map(lambda a: a[t], stacked)


def run_open_loop(optimizer, params, grads, dtype):
    """Apply `optimizer` to the stacked gradient sequence `grads` from `params`, all in `dtype`.
    Returns (updates, params after each update), both stacked along the step axis, as NumPy."""

    def body(carry, g):
        p, state = carry
        updates, state = optimizer.update(g, state, p)
        p = optax.apply_updates(p, updates)
        return (p, state), (updates, p)

    p0 = cast(params, dtype)
    _, (updates, trajectory) = jax.jit(lambda c, gs: jax.lax.scan(body, c, gs))(
        (p0, optimizer.init(p0)), cast(grads, dtype))
    for leaf in jax.tree.leaves((updates, trajectory)):
        assert leaf.dtype == dtype
    return jax.tree.map(np.asarray, updates), jax.tree.map(np.asarray, trajectory)


def max_rel_error(a, b):
    """max over parameters and steps of max|a - b| / max|b|, each parameter array at each step
    taken as a whole (normwise: an element that is ~0 after cancellation does not divide by 0)."""
    worst = 0.0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        axes = tuple(range(1, x.ndim))
        worst = max(worst, float(np.max(np.max(np.abs(x - y), axis=axes) / np.max(np.abs(y), axis=axes))))
    return worst


# ---------------------------------------------------------------------------------------------
# cs231n assignment 2 `optim.py` (2017+) update rules, NumPy float64, one parameter array; the
# learning rate of each call is given (cs231n keeps it in config and the Solver decays it).


def cs231n_sgd_momentum(w, dw, config):
    v = config.get("velocity", np.zeros_like(w))
    v = config["momentum"] * v - config["learning_rate"] * dw
    config["velocity"] = v
    return w + v, config


def cs231n_rmsprop(w, dw, config):
    config.setdefault("cache", np.zeros_like(w))
    config["cache"] = config["decay_rate"] * config["cache"] + (1 - config["decay_rate"]) * dw**2
    return w - config["learning_rate"] * dw / (np.sqrt(config["cache"]) + config["epsilon"]), config


def cs231n_adam(w, dw, config):
    config.setdefault("m", np.zeros_like(w))
    config.setdefault("v", np.zeros_like(w))
    config.setdefault("t", 0)
    config["t"] += 1
    config["m"] = config["beta1"] * config["m"] + (1 - config["beta1"]) * dw
    mt = config["m"] / (1 - config["beta1"] ** config["t"])
    config["v"] = config["beta2"] * config["v"] + (1 - config["beta2"]) * dw**2
    vt = config["v"] / (1 - config["beta2"] ** config["t"])
    return w - config["learning_rate"] * mt / (np.sqrt(vt) + config["epsilon"]), config


def cs231n_run(rule, hyper, params, grads, rates):
    """Params after each of the steps of cs231n's `rule` (rates[t] at step t), stacked."""
    out = {}
    for name, w in params.items():
        w, config, trajectory = np.array(w, np.float64), dict(hyper), []
        for t, rate in enumerate(rates):
            config["learning_rate"] = rate
            w, config = rule(w, grads[name][t], config)
            trajectory.append(w)
        out[name] = np.stack(trajectory)
    return out


def rates_of(learning_rate, steps=STEPS):
    """The rate of each step as the optimizers see it (a schedule evaluated at the int32 count,
    the way optax calls it: 002's schedule then gives float32 values even under x64)."""
    if callable(learning_rate):
        return [float(learning_rate(jnp.asarray(t, jnp.int32))) for t in range(steps)]
    return [learning_rate] * steps


# name -> (ours, the optax optimizer it coincides with, cs231n rule and its hyperparameters)
PAIRS = {
    "momentum": (lambda lr=0.05: sgd_momentum(lr, momentum=0.9),
                 lambda lr=0.05: optax.sgd(lr, momentum=0.9),
                 cs231n_sgd_momentum, {"momentum": 0.9}),
    "rmsprop": (lambda lr=1e-3: rmsprop(lr, decay_rate=0.99, eps=1e-8),
                lambda lr=1e-3: optax.rmsprop(lr, decay=0.99, eps=1e-8, eps_in_sqrt=False),
                cs231n_rmsprop, {"decay_rate": 0.99, "epsilon": 1e-8}),
    "adam": (lambda lr=1e-3: adam(lr, beta1=0.9, beta2=0.999, eps=1e-8),
             lambda lr=1e-3: optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8),
             cs231n_adam, {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}),
}
#: the pairs that coincide with a schedule too (momentum does not: the rate sits inside the
#: velocity in cs231n's rule, outside the trace in optax's)
SCHEDULED_PAIRS = ["rmsprop", "adam"]


# ---------------------------------------------------------------------------------------------
# each hand-written optimizer is cs231n's rule


@pytest.mark.parametrize("scheduled", [False, True], ids=["constant", "schedule"])
@pytest.mark.parametrize("name", list(PAIRS))
def test_follows_cs231n_rule(name, scheduled):
    ours, _, rule, hyper = PAIRS[name]
    lr = SCHEDULE if scheduled else 0.05
    grads = gradient_sequence(name)
    _, trajectory = run_open_loop(ours(lr), PARAMS0, grads, jnp.float64)
    expected = cs231n_run(rule, hyper, PARAMS0, grads, rates_of(lr))
    assert max_rel_error(trajectory, expected) < F64_TOL


# ---------------------------------------------------------------------------------------------
# agreement with optax where the definitions coincide


AGREEMENT_CASES = [(n, False) for n in PAIRS] + [(n, True) for n in SCHEDULED_PAIRS]


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name, scheduled", AGREEMENT_CASES,
                         ids=[f"{n}-{'schedule' if s else 'constant'}" for n, s in AGREEMENT_CASES])
def test_agrees_with_optax(name, scheduled, dtype):
    ours, theirs, _, _ = PAIRS[name]
    ours, theirs = (ours(SCHEDULE), theirs(SCHEDULE)) if scheduled else (ours(), theirs())
    grads = gradient_sequence(name)
    our_updates, our_params = run_open_loop(ours, PARAMS0, grads, dtype)
    their_updates, their_params = run_open_loop(theirs, PARAMS0, grads, dtype)
    errors = (max_rel_error(our_updates, their_updates), max_rel_error(our_params, their_params))
    tol = F64_TOL if dtype == jnp.float64 else F32_TOL
    assert max(errors) < tol, f"{name}: max relative error (updates, params) {errors}"


# ---------------------------------------------------------------------------------------------
# the differences in definition, each pinned by updates worked out by hand (float64)

# one parameter vector; gradients from tiny (where eps matters) to large
W0 = np.array([0.3, -1.2, 2.0, 0.7])
G0 = np.array([1e-9, -3e-6, 0.5, -2.0])
G1 = np.array([4e-9, 1e-6, -0.25, -1.5])


def two_steps(optimizer, w=W0, grads=(G0, G1)):
    """(updates, params) after each of the steps of `optimizer` on W0, through
    `optax.apply_updates`, in float64."""
    params = {"w": jnp.asarray(w, jnp.float64)}
    state = optimizer.init(params)
    updates_seen, params_seen = [], []
    for g in grads:
        updates, state = optimizer.update({"w": jnp.asarray(g, jnp.float64)}, state, params)
        params = optax.apply_updates(params, updates)
        updates_seen.append(np.asarray(updates["w"]))
        params_seen.append(np.asarray(params["w"]))
    return updates_seen, params_seen


def assert_close(actual, expected, rtol=1e-14):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=0)


def test_momentum_equals_optax_trace_only_for_a_constant_rate():
    mu, (lr0, lr1) = 0.9, rates_of(SCHEDULE, 2)
    assert lr0 != lr1  # the schedule changes the rate between these two steps
    # cs231n: v0 = -lr0 g0, v1 = mu v0 - lr1 g1; optax: t1 = g1 + mu g0, update -lr1 t1
    ours_expected = [-lr0 * G0, mu * (-lr0 * G0) - lr1 * G1]
    optax_expected = [-lr0 * G0, -lr1 * (G1 + mu * G0)]
    ours, our_params = two_steps(sgd_momentum(SCHEDULE, mu))
    theirs, _ = two_steps(optax.sgd(SCHEDULE, momentum=mu))
    for t in range(2):
        assert_close(ours[t], ours_expected[t])
        assert_close(theirs[t], optax_expected[t])
    assert_close(our_params[1], W0 + ours_expected[0] + ours_expected[1])  # w += v, twice
    # the difference is exactly the past gradient's rate change, carried by the momentum
    assert_close(ours[1] - theirs[1], -mu * G0 * (lr0 - lr1), rtol=1e-9)
    assert np.all(np.abs(ours[1] - theirs[1]) > 1e-3 * np.abs(theirs[1]))
    # with a constant rate the two coincide (the algebra in the docstring)
    ours, _ = two_steps(sgd_momentum(lr0, mu))
    theirs, _ = two_steps(optax.sgd(lr0, momentum=mu))
    assert_close(ours[1], theirs[1])


def test_momentum_with_schedule_differs_from_optax_over_100_steps():
    grads = gradient_sequence("momentum")
    ours, _ = run_open_loop(sgd_momentum(SCHEDULE, 0.9), PARAMS0, grads, jnp.float64)
    theirs, _ = run_open_loop(optax.sgd(SCHEDULE, momentum=0.9), PARAMS0, grads, jnp.float64)
    # far beyond rounding: 002's decay makes the rates differ by 10% per epoch of 3 steps
    assert max_rel_error(ours, theirs) > 1e-3


def rms_by_hand(lr, decay, eps, grads, eps_in_sqrt=False, initial=0.0, bias_correction=False):
    cache, out = np.full_like(grads[0], initial), []
    for t, g in enumerate(grads, start=1):
        cache = decay * cache + (1 - decay) * g**2
        c = cache / (1 - decay**t) if bias_correction else cache
        out.append(-lr * g / (np.sqrt(c + eps) if eps_in_sqrt else np.sqrt(c) + eps))
    return out


def test_rmsprop_two_steps_by_hand_and_optax_arguments_that_coincide():
    lr = 1e-2
    expected = rms_by_hand(lr, 0.99, 1e-8, [G0, G1])
    ours, our_params = two_steps(rmsprop(lr))
    theirs, _ = two_steps(optax.rmsprop(lr, decay=0.99, eps=1e-8, eps_in_sqrt=False))
    for t in range(2):
        assert_close(ours[t], expected[t])
        assert_close(theirs[t], expected[t])
    assert_close(our_params[1], W0 + expected[0] + expected[1])
    # the decay convention: after two steps cache = d (1 - d) g0^2 + (1 - d) g1^2, and with the
    # roles of d and 1 - d swapped the second update would be this instead, far off
    swapped = rms_by_hand(lr, 0.01, 1e-8, [G0, G1])
    assert np.all(np.abs(ours[1] - swapped[1]) > 0.1 * np.abs(swapped[1]))


def test_rmsprop_eps_outside_the_square_root_unlike_optax_default():
    lr = 1e-2
    ours, _ = two_steps(rmsprop(lr, decay_rate=0.99))
    theirs, _ = two_steps(optax.rmsprop(lr, decay=0.99))  # eps_in_sqrt=True by default
    assert_close(theirs[0], rms_by_hand(lr, 0.99, 1e-8, [G0], eps_in_sqrt=True)[0])
    assert_close(ours[0], rms_by_hand(lr, 0.99, 1e-8, [G0])[0])
    # tiny gradients: sqrt(cache + eps) ~ 1e-4 against sqrt(cache) + eps ~ 1e-8..1e-7
    assert np.all(np.abs(ours[0][:2]) > 10 * np.abs(theirs[0][:2]))


def test_rmsprop_default_decay_is_cs231n_099_not_optax_09():
    lr = 1e-2
    ours, _ = two_steps(rmsprop(lr))
    theirs, _ = two_steps(optax.rmsprop(lr, eps_in_sqrt=False))  # optax's default decay 0.9
    assert_close(theirs[0], rms_by_hand(lr, 0.9, 1e-8, [G0])[0])
    assert_close(ours[0], rms_by_hand(lr, 0.99, 1e-8, [G0])[0])
    # first step on the large gradients: lr sign(g) / sqrt(1 - decay): 10 lr vs 3.16 lr
    assert_close(ours[0][2:] / theirs[0][2:], np.sqrt(0.1 / 0.01), rtol=1e-6)
    assert_close(two_steps(rmsprop(lr, decay_rate=0.9))[0][1],
                 two_steps(optax.rmsprop(lr, eps_in_sqrt=False))[0][1])


def test_rmsprop_cache_starts_at_zero_as_optax_initial_scale_0():
    lr = 1e-2
    state = rmsprop(lr).init({"w": jnp.zeros(4, jnp.float64)})
    assert np.all(np.asarray(state.cache["w"]) == 0)
    ours, _ = two_steps(rmsprop(lr))
    tf1, _ = two_steps(optax.rmsprop(lr, decay=0.99, eps_in_sqrt=False, initial_scale=1.0))
    assert_close(tf1[0], rms_by_hand(lr, 0.99, 1e-8, [G0], initial=1.0)[0])
    # a cache starting at 1 divides the first steps by ~sqrt(0.99) instead of ~0.1 |g|
    assert np.all(np.abs(ours[0]) > 5 * np.abs(tf1[0]))


def test_rmsprop_has_no_bias_correction_as_optax_default():
    lr = 1e-2
    ours, _ = two_steps(rmsprop(lr))
    corrected, _ = two_steps(optax.rmsprop(lr, decay=0.99, eps_in_sqrt=False, bias_correction=True))
    assert_close(corrected[0], rms_by_hand(lr, 0.99, 1e-8, [G0], bias_correction=True)[0])
    assert_close(ours[0][2:] / corrected[0][2:], np.sqrt(1 / 0.01), rtol=1e-6)


def adam_by_hand(lr, b1, b2, eps, grads, eps_root=0.0):
    m, v, out = np.zeros_like(grads[0]), np.zeros_like(grads[0]), []
    for t, g in enumerate(grads, start=1):  # t counts from 1 (cs231n increments before use)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        mt, vt = m / (1 - b1**t), v / (1 - b2**t)
        out.append(-lr * mt / (np.sqrt(vt + eps_root) + eps))
    return out


def test_adam_two_steps_by_hand_same_in_optax():
    lr = 1e-3
    expected = adam_by_hand(lr, 0.9, 0.999, 1e-8, [G0, G1])
    ours, our_params = two_steps(adam(lr))
    theirs, _ = two_steps(optax.adam(lr))
    for t in range(2):
        assert_close(ours[t], expected[t])
        assert_close(theirs[t], expected[t])
    assert_close(our_params[1], W0 + expected[0] + expected[1])
    # the first step is ~ -lr sign(g) only because t starts at 1 (bias correction divides by
    # 1 - beta**1); eps outside the root shows on the 1e-9 gradient: -lr g / (|g| + 1e-8)
    assert_close(ours[0][0], -lr * 1e-9 / (1e-9 + 1e-8))
    np.testing.assert_allclose(ours[0][2:], -lr * np.sign(G0[2:]), rtol=1e-7)


def test_adam_eps_root_is_a_different_rule():
    lr = 1e-3
    ours, _ = two_steps(adam(lr))
    rooted, _ = two_steps(optax.adam(lr, eps_root=1e-8))
    assert_close(rooted[0], adam_by_hand(lr, 0.9, 0.999, 1e-8, [G0], eps_root=1e-8)[0])
    assert np.all(np.abs(ours[0][:2]) > 10 * np.abs(rooted[0][:2]))


# ---------------------------------------------------------------------------------------------
# schedules: update t uses schedule(t), counted as optax.sgd(schedule) counts


@pytest.mark.parametrize("factory", [lambda lr: sgd_momentum(lr, momentum=0.0), rmsprop, adam],
                         ids=["momentum", "rmsprop", "adam"])
def test_schedule_step_counting_matches_optax_sgd(factory):
    steps = 10
    grads = {"w": np.tile(G0, (steps, 1))}
    params = {"w": W0}
    # the rate is a factor outside everything else, so updates(schedule) / updates(rate 1) is
    # the rate each update used
    scheduled, _ = run_open_loop(factory(SCHEDULE), params, grads, jnp.float64)
    unit, _ = run_open_loop(factory(1.0), params, grads, jnp.float64)
    used = scheduled["w"] / unit["w"]
    sgd_updates, _ = run_open_loop(optax.sgd(SCHEDULE), params, grads, jnp.float64)
    optax_used = sgd_updates["w"] / -grads["w"]
    assert_close(used, optax_used, rtol=1e-12)
    # and that is 002's schedule: 0.1 at step 0, then decayed once per 3-step epoch
    expected = [0.1 * 0.9 ** -(-t // 3) for t in range(steps)]
    # 002's schedule evaluates in float32 (optax's int32 count): within an ulp of float32 (measured
    # 4e-8 relative), not float64 rounding
    np.testing.assert_allclose(used[:, 0], expected, rtol=float(np.finfo(np.float32).eps))


@pytest.mark.parametrize("schedule", [
    SCHEDULE,  # float32 values (optax's int32 count)
    lambda count: jnp.asarray(0.1, jnp.float64) * 0.9**count,  # float64 values
    0.1,
], ids=["float32-schedule", "float64-schedule", "constant"])
def test_state_keeps_float32_under_x64(schedule):
    params = cast(PARAMS0, jnp.float32)
    _, g = GRAD_FN(params, jnp.asarray(X, jnp.float32), Y)
    for opt in (sgd_momentum(schedule), rmsprop(schedule), adam(schedule)):
        updates, state = opt.update(g, opt.init(params), params)
        assert state.count.dtype == jnp.int32 and int(state.count) == 1
        for leaf in jax.tree.leaves((updates, state[1:])):
            assert leaf.dtype == jnp.float32


# ---------------------------------------------------------------------------------------------
# the state: jit with donation, sharding, checkpoint key paths

HAND_WRITTEN = {"momentum": sgd_momentum, "rmsprop": rmsprop, "adam": adam}


@pytest.mark.parametrize("name", list(HAND_WRITTEN))
def test_state_under_jit_with_donation_and_sharding(name):
    opt = HAND_WRITTEN[name](SCHEDULE)
    grads = cast(gradient_sequence(name), jnp.float32)

    def step(params, state, g):
        updates, state = opt.update(g, state, params)
        return optax.apply_updates(params, updates), state

    # eager reference, three steps
    p_ref = cast(PARAMS0, jnp.float32)
    s_ref = opt.init(p_ref)
    for t in range(3):
        p_ref, s_ref = step(p_ref, s_ref, step_of(grads, t))

    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    p = jax.device_put(cast(PARAMS0, jnp.float32), replicated)
    s = jax.device_put(opt.init(p), replicated)
    jitted = jax.jit(step, donate_argnums=(0, 1))
    with warnings.catch_warnings():
        # "Some donated buffers were not usable" (e.g. a state leaf changing dtype) fails the test
        warnings.filterwarnings("error", message=".*donated buffers.*")
        for t in range(3):
            old = jax.tree.leaves((p, s))
            p, s = jitted(p, s, step_of(grads, t))
            assert all(leaf.is_deleted() for leaf in old)
    assert int(s.count) == 3
    for a, b in zip(jax.tree.leaves((p, s)), jax.tree.leaves((p_ref, s_ref))):
        assert a.dtype == b.dtype and a.shape == b.shape and a.sharding.is_fully_replicated
    # not bit for bit: XLA fuses the jitted step (e.g. mu * v - lr * dw into a fused
    # multiply-add, one rounding instead of two), measured 1.5 ulps on one element; the same
    # order of rounding as the float32 optax comparison, hence its bound
    as_one_step = functools.partial(jax.tree.map, lambda a: a[None])
    assert max_rel_error(as_one_step((p, s[1:])), as_one_step((p_ref, s_ref[1:]))) < F32_TOL


@pytest.mark.parametrize("name, state_type, accumulators", [
    ("momentum", MomentumState, ["velocity"]),
    ("rmsprop", RMSPropState, ["cache"]),
    ("adam", AdamState, ["m", "v"]),
])
def test_state_round_trips_by_key_path(name, state_type, accumulators):
    opt = HAND_WRITTEN[name](SCHEDULE)
    grads = gradient_sequence(name)
    params = cast(PARAMS0, jnp.float64)
    state = opt.init(params)
    assert isinstance(state, state_type)
    for t in range(4):
        updates, state = opt.update(step_of(grads, t), state, params)
        params = optax.apply_updates(params, updates)
    # saved as a checkpoint does: key path -> array, no tree definition
    leaves_with_paths = jax.tree_util.tree_flatten_with_path(state)[0]
    saved = {jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves_with_paths}
    expected_keys = [".count"] + [f".{a}['{p}']" for a in accumulators for p in sorted(PARAMS0)]
    assert sorted(saved) == sorted(expected_keys)
    restored = jax.tree_util.tree_map_with_path(
        lambda k, like: jnp.asarray(saved[jax.tree_util.keystr(k)], like.dtype), opt.init(params))
    g = step_of(grads, 4)
    after_saved, _ = opt.update(g, state, params)
    after_restored, _ = opt.update(g, restored, params)
    for a, b in zip(jax.tree.leaves(after_saved), jax.tree.leaves(after_restored)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ---------------------------------------------------------------------------------------------
# the registry


def test_registry_default_is_plain_optax_sgd():
    assert DEFAULT_OPTIMIZER == "sgd"
    params = {"w": jnp.asarray(W0)}
    g = {"w": jnp.asarray(G0)}
    ours = make("sgd", 0.1)
    updates, _ = ours.update(g, ours.init(params), params)
    assert_close(np.asarray(updates["w"]), -0.1 * G0)
    # optax.sgd's own (empty) state, so existing checkpoints keep their layout
    assert jax.tree.leaves(ours.init(params)) == jax.tree.leaves(optax.sgd(0.1).init(params)) == []


@pytest.mark.parametrize("name, hyper, reference", [
    ("momentum", {"momentum": 0.5}, lambda lr: sgd_momentum(lr, 0.5)),
    ("rmsprop", {"decay_rate": 0.9, "eps": 1e-6}, lambda lr: rmsprop(lr, 0.9, 1e-6)),
    ("adam", {"beta1": 0.8}, lambda lr: adam(lr, beta1=0.8)),
    ("optax-sgd-momentum", {"momentum": 0.5}, lambda lr: optax.sgd(lr, momentum=0.5)),
    ("optax-rmsprop", {}, lambda lr: optax.rmsprop(lr)),  # optax's own defaults
    ("optax-adam", {"beta2": 0.99, "eps": None}, lambda lr: optax.adam(lr, b2=0.99)),  # None: default
])
def test_registry_builds_the_named_optimizer(name, hyper, reference):
    ours = make(name, SCHEDULE, **hyper)
    theirs = reference(SCHEDULE)
    assert isinstance(ours, optax.GradientTransformation)
    a, _ = two_steps(ours)
    b, _ = two_steps(theirs)
    for t in range(2):
        np.testing.assert_array_equal(a[t], b[t])


def test_registry_names():
    assert set(OPTIMIZERS) == {"sgd", "momentum", "rmsprop", "adam", "optax-sgd-momentum",
                               "optax-rmsprop", "optax-adam"}


def test_registry_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown optimizer 'adamw'") as e:
        make("adamw", 0.1)
    for name in OPTIMIZERS:
        assert name in str(e.value)


def test_registry_hyperparameter_the_optimizer_does_not_take():
    with pytest.raises(ValueError, match="'sgd' does not take momentum"):
        make("sgd", 0.1, momentum=0.9)
    with pytest.raises(ValueError, match="'momentum' does not take beta1; it takes momentum"):
        make("momentum", 0.1, beta1=0.9)


@pytest.mark.parametrize("name, hyper, message", [
    ("momentum", {"momentum": 1.0}, r"momentum must be a finite number in \[0, 1\)"),
    ("momentum", {"momentum": -0.1}, "momentum"),
    ("optax-sgd-momentum", {"momentum": 1.5}, "momentum"),
    ("rmsprop", {"decay_rate": 1.0}, "decay_rate"),
    ("rmsprop", {"eps": 0.0}, r"eps must be a finite number in \(0, inf\)"),
    ("optax-rmsprop", {"eps": -1e-8}, "eps"),
    ("adam", {"beta1": 1.0}, "beta1"),
    ("adam", {"beta2": -0.5}, "beta2"),
    ("adam", {"eps": float("nan")}, "eps"),
    ("optax-adam", {"beta2": True}, "beta2"),
    ("adam", {"beta1": "0.9"}, "beta1"),
])
def test_registry_hyperparameter_out_of_range(name, hyper, message):
    with pytest.raises(ValueError, match=message):
        make(name, 0.1, **hyper)


@pytest.mark.parametrize("learning_rate", [0.0, -0.1, float("inf"), float("nan"), True, "0.1", None])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_registry_learning_rate_not_positive(name, learning_rate):
    with pytest.raises(ValueError, match=f"optimizer '{name}': learning_rate must be a positive"):
        make(name, learning_rate)


def test_factories_check_their_arguments_too():
    with pytest.raises(ValueError, match="momentum"):
        sgd_momentum(0.1, momentum=1.0)
    with pytest.raises(ValueError, match="eps"):
        rmsprop(0.1, eps=0)
    with pytest.raises(ValueError, match="learning_rate"):
        adam(-1e-3)



# ---------------------------------------------------------------------------------------------
# a planted mistake: the optax comparison catches Adam without its bias correction


def adam_without_bias_correction(learning_rate, beta1=0.9, beta2=0.999, eps=1e-8):
    """The classic slip: Adam's moments used as they are, m / (sqrt(v) + eps), so the first
    steps are far too small (m and v start at 0)."""

    def init(params):
        return AdamState(count=jnp.zeros([], jnp.int32), m=optax.tree.zeros_like(params),
                         v=optax.tree.zeros_like(params))

    def update(grads, state, params=None):
        m = jax.tree.map(lambda m, dw: beta1 * m + (1 - beta1) * dw, state.m, grads)
        v = jax.tree.map(lambda v, dw: beta2 * v + (1 - beta2) * dw**2, state.v, grads)
        updates = jax.tree.map(lambda m, v: -learning_rate * m / (jnp.sqrt(v) + eps), m, v)
        return updates, AdamState(count=optax.safe_increment(state.count), m=m, v=v)

    return optax.GradientTransformation(init, update)


def test_adam_without_bias_correction_is_caught_by_the_optax_comparison():
    grads = gradient_sequence("adam")
    theirs = run_open_loop(optax.adam(1e-3, b1=0.9, b2=0.999, eps=1e-8), PARAMS0, grads, jnp.float64)
    mutant = run_open_loop(adam_without_bias_correction(1e-3), PARAMS0, grads, jnp.float64)
    correct = run_open_loop(adam(1e-3), PARAMS0, grads, jnp.float64)
    assert max_rel_error(correct[0], theirs[0]) < F64_TOL  # the same check passes the real one
    error = max_rel_error(mutant[0], theirs[0])
    assert error > 1e3 * F64_TOL, f"Adam without bias correction slipped through: error {error:.3g}"
