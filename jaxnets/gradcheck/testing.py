"""The checker in a test suite: `assert_grads`, for a test that builds its own example (the
pytest plugin, `jaxnets.gradcheck.pytest_plugin`, collects whole files without one)."""
from __future__ import annotations

import os

from jaxnets.gradcheck.api import check
from jaxnets.gradcheck.cli import check_path
from jaxnets.gradcheck.options import Options
from jaxnets.gradcheck.prepare import CheckInputError


def assert_grads(fn, *example, **check_args):
    """`check(fn, *example, **check_args)` for a test: raises AssertionError with the report's
    text when a gradient disagrees (FAIL or ERROR); returns the report otherwise (PASS,
    AMBIGUOUS and DOMAIN pass, their notes in the report).

    `fn` may also be a file's path (str or os.PathLike): everything checkable in it is
    checked as `jaxnets gradcheck FILE.py` does, with the examples the file or the checker's
    knowledge of course conventions gives; `check_args` then takes `options=` and Options
    fields only. It raises as `jaxnets gradcheck FILE.py` exits non-zero: a FAIL, an ERROR, or
    nothing judged at all. Returns the file's summary (`.rows`, `.table()`)."""
    if isinstance(fn, (str, os.PathLike)):
        if example:
            raise CheckInputError("assert_grads(path): the examples come from the file; give no example arguments")
        report = check_path(os.fspath(fn), Options.of(check_args.pop("options", None), check_args))
        if report.exit_status != 0:
            failed = [r.report.text() for r in report.rows if r.status in ("fail", "error") and r.report is not None]
            raise AssertionError("\n\n".join([report.table()] + failed + [report.nothing_judged() or ""]).rstrip())
        return report
    report = check(fn, *example, **check_args)
    if not report.ok:
        raise AssertionError(report.text())
    return report


__all__ = ["assert_grads"]
