"""The checker as a pytest plugin (registered by the `pytest11` entry point, no conftest).

    pytest --gradcheck path/                 every pair, loss and custom rule in the .py files
                                             under path/ is a test item of its own
    pytest --gradcheck path/ --gradcheck-cases 20 --gradcheck-seed 3
    pytest --gradcheck layers.py --gradcheck-example conv_backward=2x3x8x8,4x3x3x3,4

An item fails with the checker's report when a gradient disagrees (FAIL) or the rule cannot
be run on its example (ERROR); PASS, AMBIGUOUS and DOMAIN pass (the verdict and its note are
in the item's report section); an item with no example is skipped with what to add. A file's
examples come from its own `NAME_example()` functions, from the checker's knowledge of course
conventions, from `--gradcheck-example NAME=SPEC` (SPEC as `jaxnets gradcheck --example`:
one shape per positional argument with an optional domain), or from FILE_examples.py beside
FILE.py, which defines `NAME_example()` — never from editing the file. Test files (`test_*.py`, `*_test.py`, conftest.py) are collected by pytest as usual.

For a test that builds its own example, the `gradcheck` fixture is `assert_grads` with the
command line's cases and seed: `def test_rule(gradcheck): gradcheck(my_rule, x)`.
"""
from __future__ import annotations

import fnmatch

import pytest

# The checker (and JAX) is imported when a check runs, not when pytest starts: every pytest
# run in an environment with jaxnets installed loads this plugin.


def pytest_addoption(parser):
    group = parser.getgroup("gradcheck", "jaxnets gradient checks of the derivative rules in .py files")
    group.addoption("--gradcheck", action="store_true",
                    help="collect every pair, loss and custom rule in the .py files under the given paths as a "
                         "test item (test files are collected as usual)")
    group.addoption("--gradcheck-cases", type=int, default=None, metavar="N",
                    help="cases per check (default: the checker's, 60)")
    group.addoption("--gradcheck-seed", type=int, default=0, metavar="S", help="seed of the generated cases")
    group.addoption("--gradcheck-example", action="append", default=[], metavar="NAME=SPEC",
                    help="the example of NAME (a backward, a stem or a function) in any collected file, "
                         "e.g. conv_backward=2x3x8x8,4x3x3x3,4 (repeatable)")


def _options(config):
    from jaxnets.gradcheck.options import Options

    cases = config.getoption("gradcheck_cases")
    if cases is not None and cases < 1:
        raise pytest.UsageError(f"--gradcheck-cases must be >= 1, got {cases}")
    return Options(cases=cases, seed=config.getoption("gradcheck_seed"))


def _cli_examples(config):
    out = {}
    for item in config.getoption("gradcheck_example"):
        name, sep, spec = item.partition("=")
        if not sep or not name or not spec:
            raise pytest.UsageError(f"--gradcheck-example {item!r}: expected NAME=SPEC, e.g. relu=4x5")
        out[name.strip()] = spec.strip()
    return out


def _is_collected(path, config):
    """A user's file: not a test file (pytest collects those as usual), not a conftest, not the
    examples file of a file beside it."""
    patterns = list(config.getini("python_files")) + ["conftest.py", "__init__.py"]
    if any(fnmatch.fnmatch(path.name, p) for p in patterns):
        return False
    return not (path.stem.endswith("_examples") and path.with_name(path.stem[:-len("_examples")] + ".py").is_file())


def pytest_collect_file(file_path, parent):
    config = parent.config
    if config.getoption("gradcheck") and file_path.suffix == ".py" and _is_collected(file_path, config):
        return GradcheckFile.from_parent(parent, path=file_path)
    return None


class GradcheckFile(pytest.File):
    """A user's file: one item per thing the checker finds in it."""

    def collect(self):
        from jaxnets.gradcheck.cli import load_module, with_examples
        from jaxnets.gradcheck.discover import find
        from jaxnets.gradcheck.prepare import CheckInputError

        try:
            module = load_module(str(self.path))
        except CheckInputError as exc:
            raise self.CollectError(str(exc)) from None
        lookup = with_examples(module, str(self.path))
        for found in find(lookup):
            yield GradcheckItem.from_parent(self, name=found.name, module=lookup, found=found)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, self.CollectError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class GradcheckFailure(Exception):
    """A row that failed, with the checker's text."""


class GradcheckItem(pytest.Item):
    def __init__(self, *, module, found, **kwargs):
        super().__init__(**kwargs)
        self.module, self.found = module, found

    def runtest(self):
        from jaxnets.gradcheck.cli import quiet_numpy
        from jaxnets.gradcheck.discover import check_found

        config = self.config
        options = _options(config)
        examples = _cli_examples(config)
        spec = examples.get(self.found.name) or examples.get(self.found.stem)
        rerun = f"jaxnets gradcheck {self.path}:{self.found.name}"
        settings = options.as_kwargs()
        settings.pop("replay")  # a file's items are generated cases, never one saved case
        with quiet_numpy():
            if spec is not None:
                row = self._with_example(spec, settings, rerun)
            else:
                row = check_found(self.module, self.found, rerun=rerun, **settings)
        self.add_report_section("call", "gradcheck", f"{row.status.upper()}: {row.note}")
        if row.status == "skip":
            pytest.skip(f"{self.found.name}: {row.note}")
        if row.status in ("fail", "error"):
            text = row.report.text() if row.report is not None else row.note
            raise GradcheckFailure(f"{self.found.name}: {row.status.upper()}\n{text}")

    def _with_example(self, spec, settings, rerun):
        from jaxnets.gradcheck.api import run_check
        from jaxnets.gradcheck.case import Example
        from jaxnets.gradcheck.cli import parse_example
        from jaxnets.gradcheck.discover import Row
        from jaxnets.gradcheck.prepare import CheckInputError

        try:
            args, domains = parse_example(spec, settings["seed"])
            report = run_check(self.found.fn, examples=[Example(tuple(args), {}, 0, domains)],
                               backward=self.found.backward, name=self.found.name,
                               rerun=f"{rerun} --example {spec}", **settings)
        except CheckInputError as exc:
            return Row(self.found.name, "fail" if exc.rule_fault else "error", None, 0.0, str(exc))
        return Row(self.found.name, report.status, None, report.elapsed, f"examples: --gradcheck-example {spec}",
                   report)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, GradcheckFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, self.found.line - 1 if self.found.line else None, f"gradcheck: {self.found.name}"


@pytest.fixture
def gradcheck(request):
    """`assert_grads` with the command line's --gradcheck-cases and --gradcheck-seed as
    defaults: `gradcheck(rule, x)` raises AssertionError with the report when a gradient
    disagrees."""
    from jaxnets.gradcheck.options import Options
    from jaxnets.gradcheck.testing import assert_grads

    defaults = _options(request.config)

    def run(fn, *example, **check_args):
        options = Options.of(check_args.pop("options", defaults), {})
        return assert_grads(fn, *example, options=options, **check_args)

    return run
