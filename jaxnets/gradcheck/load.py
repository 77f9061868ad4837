"""A user's file or folder loaded for its definitions only.

Real files are notebook exports and course folders: `get_ipython()` and `%matplotlib inline`
lines, top-level training code, test cases drawn from helpers that are not there
(`from testCases import *`), data files that are not there, one function per file with
`np` imported by an earlier notebook cell. So nothing is run as a script: each top-level
statement is run only when it is

- an import (a failing one is recorded, and reported for the functions that need it),
- a `def` or a `class`,
- an assignment or call whose every call goes to a library (`EPS = 1e-5`,
  `f = jax.custom_vjp(f)`, `f.defvjp(fwd, bwd)`, `jax.config.update(...)`) — never to
  anything the user wrote (their functions, classes, or modules of their folder), nor to a
  builtin such as `print`;

`if`, `for`, `while` and `with` blocks are skipped (`try` blocks of imports run). Modules
of the user's folder that a file imports are loaded the same way. A folder is loaded into one
namespace, its files in name order, as the cells of one notebook: a pair split across files
(forward in one, backward in another, `from x import *`) is found. Global names a course's
notebooks take for granted (`np`) are bound where a function uses them and nothing defined
them (the convention's `implicit_globals`), and said so.
"""
from __future__ import annotations

import ast
import builtins
import importlib
import importlib.abc
import importlib.util
import os
import re
import sys
import types

from jaxnets.gradcheck import conventions
from jaxnets.gradcheck.prepare import CheckInputError, first_line

_MAGIC = re.compile(r"^(\s*)[%!].*$", re.MULTILINE)
_SAFE_BUILTINS = {"float", "int", "tuple", "list", "dict", "set", "frozenset", "range", "str", "bool", "complex",
                  "object", "property", "staticmethod", "classmethod", "super", "type"}
_RULE_METHODS = {"defvjp", "defjvp", "defjvps", "defvjp_all"}


def source_files(path):
    """The .py files a PATH stands for: the file, or a folder's files in name order."""
    if os.path.isdir(path):
        # the course's helper files first (rnn_utils.py, testCases_v4.py, public_tests.py), so the
        # student's own definition of a name they share (utils.py's rnn_forward) is the one kept
        files = sorted((os.path.join(path, f) for f in os.listdir(path) if f.endswith(".py")),
                       key=lambda f: (not is_helper(f), os.path.basename(f)))
        if not files:
            raise CheckInputError(f"{path}: no .py files in this folder")
        return files
    if not os.path.isfile(path):
        raise CheckInputError(f"{path}: no such file or folder")
    return [path]


_HELPER = re.compile(r"(util|test|grader)", re.IGNORECASE)


def is_helper(path):
    """Whether a file of a folder is one a course ships with the assignment (its name says
    utils, testCases, public_tests): its functions are not the student's, and get no row."""
    return bool(_HELPER.search(os.path.basename(path)))


def load(path):
    """The module (a namespace of definitions) PATH defines: a file, or every file of a folder
    together. Its `gradcheck_notes` say what was bound for it, `gradcheck_failed_imports`
    which imports failed (name -> why)."""
    files = source_files(path)
    name = "jaxnets_gradcheck_" + "".join(ch if ch.isalnum() else "_" for ch in os.path.abspath(path))
    module = types.ModuleType(name)
    module.__file__ = os.path.abspath(files[0])
    module.gradcheck_notes, module.gradcheck_failed_imports = [], {}
    module.gradcheck_helper_files = {os.path.abspath(f) for f in files if is_helper(f)} if len(files) > 1 else set()
    folders = sorted({os.path.dirname(os.path.abspath(f)) for f in files})
    finder = _FolderFinder(folders, module.gradcheck_failed_imports)
    sys.modules[name] = module
    sys.path[:0] = folders  # the files import their neighbours
    sys.meta_path.insert(0, finder)
    try:
        for f in files:
            run_definitions(f, module.__dict__, folders, module.gradcheck_failed_imports, module.gradcheck_notes)
    finally:
        sys.meta_path.remove(finder)
        for folder in folders:
            sys.path.remove(folder)
        for loaded in finder.loaded:  # the user's modules: loaded for this check only
            sys.modules.pop(loaded, None)
    _bind_implicit(module)
    return module


def run_definitions(path, namespace, folders, failed, notes=None):
    """Run the definitions of one file into `namespace` (see the module docstring)."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            text = fh.read()
    except OSError as exc:
        raise CheckInputError(f"{path}: cannot be read ({first_line(exc)})") from None
    text = _MAGIC.sub(lambda m: m.group(1) + "pass", text)  # IPython's %magic and !shell lines
    namespace.setdefault("__builtins__", builtins)
    try:
        body = ast.parse(text, filename=path).body
    except SyntaxError as exc:
        body = _parsable_blocks(text, path, notes, f"{exc.msg}")
        if not body:
            raise CheckInputError(f"{path}:{exc.lineno}: not Python ({exc.msg})") from None
    for stmt in body:
        _run(stmt, path, namespace, folders, failed)


def _parsable_blocks(text, path, notes, why):
    """The statements of a file that is not Python as a whole (a notebook export with its
    printed outputs pasted in, a docstring indented outside its function): its top-level
    blocks — a line at column 0 and the indented lines after it — parsed one by one, and
    the blocks that are not Python skipped (and said so)."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line[:1] not in ("", " ", "\t", "\n", "\r", "#", ")", "]", "}")
              and not re.match(r"(else|elif|except|finally)\b", line)]
    body, skipped = [], []
    for a, b in zip([0] + starts, starts + [len(lines)]):
        chunk = "".join(lines[a:b])
        if not chunk.strip():
            continue
        try:
            tree = ast.parse(chunk, filename=path)
        except SyntaxError:
            if any(ln.strip() and not ln.lstrip().startswith("#") for ln in lines[a:b]):
                skipped.append(f"{a + 1}-{b}")
            continue
        ast.increment_lineno(tree, a)
        body += tree.body
    if notes is not None and skipped:
        more = f" and {len(skipped) - 6} more" if len(skipped) > 6 else ""
        notes.append(f"{os.path.basename(path)} is not Python as a whole ({why}): {len(skipped)} top-level block(s) that "
                     f"are not Python skipped (lines {', '.join(skipped[:6])}{more})")
    return body


def _run(stmt, path, namespace, folders, failed):
    if isinstance(stmt, ast.Try):
        if all(isinstance(s, (ast.Import, ast.ImportFrom, ast.Pass, ast.Assign, ast.Expr)) and _runnable(s, namespace,
                                                                                                            folders)
               for part in (stmt.body, stmt.orelse, stmt.finalbody, *[h.body for h in stmt.handlers]) for s in part):
            _exec(stmt, path, namespace, failed)
        else:
            for s in stmt.body:
                _run(s, path, namespace, folders, failed)
        return
    if _runnable(stmt, namespace, folders):
        _exec(stmt, path, namespace, failed)


def _exec(stmt, path, namespace, failed):
    code = compile(ast.Module(body=[stmt], type_ignores=[]), path, "exec")
    try:
        exec(code, namespace)
    except Exception as exc:
        if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.Try)):
            names = [a.asname or a.name.split(".")[0] for a in getattr(stmt, "names", [])] or ["*"]
            what = ast.unparse(stmt).splitlines()[0][:80]
            for n in names:
                failed[n] = f"`{what}` failed ({first_line(exc, 100)})"
        # a definition whose decorator fails, or a library call that fails (a missing data
        # file): the names it defines stay undefined, and the functions that need them say so


def _runnable(stmt, namespace, folders):
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Pass)):
        return True
    if not isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Expr)):
        return False  # if / for / while / with: top-level script code
    for node in _outside_lambdas(stmt):
        if isinstance(node, (ast.Await, ast.Yield)):
            return False
        if isinstance(node, ast.Call) and not _library_call(node.func, namespace, folders):
            return False
    return True


def _outside_lambdas(node):
    """The nodes of a statement that run when it runs: a lambda's body runs only when it is
    called (`f.defvjp(lambda x: ..., lambda res, g: ...)` defines a rule and calls nothing of
    the user's)."""
    yield node
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Lambda):
            yield from (d for a in child.args.defaults + child.args.kw_defaults if a is not None
                        for d in _outside_lambdas(a))
        else:
            yield from _outside_lambdas(child)


def _library_call(func, namespace, folders):
    """Whether a call goes to a library: its root name is a module or object from outside
    the user's folders (a rule method `f.defvjp` of a custom_vjp counts as one)."""
    if isinstance(func, ast.Attribute) and func.attr in _RULE_METHODS:
        return True
    root = func
    while isinstance(root, ast.Attribute):
        root = root.value
    if not isinstance(root, ast.Name):
        return False  # get_ipython().magic(...), f()(...): a call's result called again
    if root.id not in namespace:
        return isinstance(func, ast.Name) and func.id in _SAFE_BUILTINS
    obj = namespace[root.id]
    return not _users(obj, namespace, folders)


def _users(obj, namespace, folders):
    """Whether obj is something the user wrote (their function, class or module)."""
    if isinstance(obj, types.ModuleType):
        where = getattr(obj, "__file__", None) or ""
    else:
        mod = getattr(obj, "__module__", None) or getattr(type(obj), "__module__", None)
        if mod == namespace.get("__name__"):
            return True
        where = getattr(sys.modules.get(mod), "__file__", None) or ""
    where = os.path.abspath(where) if where else ""
    return bool(where) and any(where.startswith(f + os.sep) for f in folders)


class _FolderFinder(importlib.abc.MetaPathFinder):
    """Loads the modules of the user's folders definitions-only (their neighbours' top-level
    code does not run either)."""

    def __init__(self, folders, failed):
        self.folders, self.failed, self.loaded = folders, failed, []

    def find_spec(self, fullname, path=None, target=None):
        if "." in fullname:
            return None
        for folder in self.folders:
            file = os.path.join(folder, fullname + ".py")
            if os.path.isfile(file):
                self.loaded.append(fullname)
                return importlib.util.spec_from_file_location(fullname, file, loader=_DefinitionsLoader(self, file))
        return None


class _DefinitionsLoader(importlib.abc.Loader):
    def __init__(self, finder, file):
        self.finder, self.file = finder, file

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        run_definitions(self.file, module.__dict__, self.finder.folders, self.finder.failed)


def _bind_implicit(module):
    """Bind the global names a course's notebooks take for granted (`np`) where a function
    of the module uses one that nothing defined."""
    ns = module.__dict__
    used = set()
    for v in list(ns.values()):
        code = getattr(v, "__code__", None)
        if code is not None and getattr(v, "__module__", None) == module.__name__:
            used |= _names(code)
    for name, (target, course) in conventions.implicit_globals().items():
        if name in used and name not in ns:
            ns[name] = importlib.import_module(target)
            module.gradcheck_notes.append(f"`{name}` is used but never imported: bound to {target} as {course}'s "
                                          f"notebooks import it")


def _names(code):
    out = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out |= _names(c)
    return out
