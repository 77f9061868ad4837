"""The seam between the checker and the project: `jaxnets.gradcheck` imports nothing from
jaxnets but itself (the NumPy twins of `reference_numpy` are its only project references), so
it can be used, and later shipped, on its own; the conformance suite sits above both."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def imports(path, root=ROOT):
    """Every module a file imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                yield node.lineno, f"{base}.{node.module}" if node.module else base
            else:
                yield node.lineno, node.module


def crossings(root):
    """The checker's imports of the project outside itself, as "file:line: module"."""
    return [f"{path.relative_to(root)}:{line}: {name}"
            for path in sorted((root / "jaxnets" / "gradcheck").rglob("*.py")) for line, name in imports(path, root)
            if name.split(".")[0] in ("jaxnets", "experiments", "netspec")
            and not (name == "jaxnets.gradcheck" or name.startswith("jaxnets.gradcheck."))]


def test_the_checker_imports_nothing_from_the_project_but_itself():
    assert crossings(ROOT) == [], "the checker must not import the project:\n" + "\n".join(crossings(ROOT))


def test_the_rule_sees_a_crossing(tmp_path):
    # the rule can fail: planted imports of the library (absolute and relative) are found
    planted = tmp_path / "jaxnets" / "gradcheck" / "planted.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("from jaxnets.ops import dense\nimport jaxnets.gradcheck.tree\nfrom ..models import mlp\n")
    assert crossings(tmp_path) == ["jaxnets/gradcheck/planted.py:1: jaxnets.ops",
                                   "jaxnets/gradcheck/planted.py:3: jaxnets.models"]


def test_nothing_below_the_conformance_suite_imports_it():
    library = [p for p in (ROOT / "jaxnets").rglob("*.py") if "conformance" not in p.parts]
    crossings = [f"{p.relative_to(ROOT)}:{line}: {name}" for p in library for line, name in imports(p)
                 if name and name.startswith("jaxnets.conformance")]
    assert crossings == [], "\n".join(crossings)
