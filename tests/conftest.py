"""Test-session setup shared by every test module.

- float64 JAX (`jax_enable_x64`) before any array is created: the gradient-equivalence suite
  checks to 1e-10. With x64 on, `jnp` defaults to float64, so a test that is about float32
  must pass explicit dtypes (`jnp.float32`, `.astype(np.float32)`).
- full-precision matmuls (GPUs and TPUs default to TF32 / bf16 passes).
- hypothesis: no deadline (the first example of a shape pays an XLA compilation),
  derandomized for a reproducible CI, blobs printed to replay a failure. HYPOTHESIS_PROFILE=
  explore draws fresh random examples instead.
- the mutant score ("mutants caught N/N") printed at the end of the run, also when the run is
  spread over processes by pytest-xdist (`-n`, on by default in pyproject.toml).
"""
import os
from typing import NamedTuple

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_default_matmul_precision", "highest")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "jaxnets",
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("explore", parent=settings.get_profile("jaxnets"), derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "jaxnets"))

_MUTANT_SCORES = pytest.StashKey[list]()


@pytest.fixture(autouse=True, scope="module")
def _fresh_compiled_programs():
    """Each test module starts with no compiled program alive: every XLA:CPU executable holds
    ~50 memory mappings and a process may have 65530 (vm.max_map_count), which the whole
    suite's programs, kept, exceeded (XLA's compiler then crashed). Modules share few."""
    yield
    from jaxnets.conformance import suite
    from jaxnets.gradcheck import subject

    subject.clear_programs()
    suite.clear_subjects()
    jax.clear_caches()


@pytest.fixture
def mutant_scoreboard(request):
    """A session-wide list the mutant tests append (name, caught, detail) to."""
    return request.config.stash.setdefault(_MUTANT_SCORES, [])


class _Score(NamedTuple):
    name: str
    caught: bool
    detail: str


def pytest_sessionfinish(session):
    """Under pytest-xdist a worker hands its mutant results to the controller, which prints
    the one score (the stash of a worker is its own)."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["mutants"] = [(r.name, bool(r.caught), r.detail)
                                   for r in session.config.stash.get(_MUTANT_SCORES, [])]


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: the controller, as a worker finishes
def pytest_testnodedown(node, error):
    scores = node.config.stash.setdefault(_MUTANT_SCORES, [])
    scores.extend(_Score(*r) for r in getattr(node, "workeroutput", {}).get("mutants", []))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    results = config.stash.get(_MUTANT_SCORES, None)
    if not results:
        return
    caught = [r for r in results if r.caught]
    terminalreporter.section("gradient-equivalence mutants")
    terminalreporter.write_line(f"mutants caught {len(caught)}/{len(results)}")
    for r in results:
        terminalreporter.write_line(f"  {'caught' if r.caught else 'MISSED'}  {r.name}: {r.detail[:160]}")
