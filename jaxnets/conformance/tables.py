"""The conformance suite's tables of checks: every pair of the hand-written (manual),
autodiff, custom_vjp (and fast) and NumPy gradients, and each against finite differences on
kink-free cases — rows of the checker's `Check`, judged by its `judges`."""
from __future__ import annotations

import itertools

from jaxnets.gradcheck import judges
from jaxnets.gradcheck.checks import Check


def suite_rows(sources):
    """Every pair of the analytic sources (display name, source key), then each vs fd."""
    rows = [Check(f"{a} vs {b}", a, b, judges.pair("strict"), (ka, kb))
            for (a, ka), (b, kb) in itertools.combinations(sources, 2)]
    rows += [Check(f"{a} vs fd", a, "fd", judges.fd_smooth, (ka,)) for a, ka in sources]
    return tuple(rows)


#: the op suite: manual (the hand-written pair), autodiff (jax.vjp of AUTODIFF's op),
#: custom_vjp (jax.vjp of CUSTOM_VJP's op), numpy (the float64 twin)
SUITE_OPS = suite_rows((("manual", "rule"), ("autodiff", "autodiff"), ("custom_vjp", "wired"),
                         ("numpy", "reference")))


def suite_model_table(modes):
    """The model suite: every gradient mode of `jaxnets.grads` (a source of the model
    subject each) and the NumPy model."""
    return suite_rows(tuple((m, m) for m in modes) + (("numpy", "reference"),))


def without_fd(table):
    """The rows that do not take finite differences (float32 runs)."""
    return tuple(c for c in table if c.judge is not judges.fd_smooth)
