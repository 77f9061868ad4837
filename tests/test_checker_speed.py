"""The checker's speed comes from structure, tested here without timing anything: a rule checked
again compiles nothing (its programs are kept under the user's code), and the cases of one
call signature are judged from one batched call per oracle (`oracles.batch`), not one per case."""
import importlib.util
from pathlib import Path

import numpy as np
from jax import monitoring

from jaxnets.gradcheck import check
from jaxnets.gradcheck.oracles import context, fd, second_order

_spec = importlib.util.spec_from_file_location(
    "tut_sin", Path(__file__).parent / "realcode" / "tut_sin_times_y_custom_vjp.py")
tut = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tut)
RNG = np.random.default_rng(3)
X, Y = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))

compiles = []
monitoring.register_event_duration_secs_listener(
    lambda event, duration, **kw: compiles.append(event) if event == "/jax/core/compile/backend_compile_duration"
    else None)


def test_checking_a_rule_again_compiles_nothing():
    assert check(tut.f, X, Y, cases=12).ok
    compiles.clear()
    assert check(tut.f, X, Y, cases=12, seed=1).ok
    assert compiles == []


def test_cases_of_one_signature_are_judged_from_batched_calls(monkeypatch):
    per_case = []
    for module, name in ((fd, "_probe_jax"), (context, "_program"), (second_order, "as_grad")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _o=original, _n=name, **k: per_case.append(_n) or _o(*a, **k))
    report = check(tut.f, X, Y, cases=12, leading_sizes=False)
    assert report.ok and len(report.cases) == 12
    # the judges asked every case for finite differences, the in-context program and second
    # order; each answer came from the batch (a salt of a judge changed without `oracles.batch`
    # would show here as per-case calls)
    assert per_case == []
