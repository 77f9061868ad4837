"""Conventions as data: what a course's code looks like, one declarative unit per course.

A `Convention` says how its pairs are named (`forward_names(stem)`: the forwards a backward
`<stem>_backward` may belong to), which names it knows (`known`: per forward or loss name a
`Known` — candidate example calls, the project's twin where there is one, how many
geometries to use, which gradients the course returns as a batch mean), which global names
its notebooks take for granted (`implicit_globals`: `np`), and which functions are
whole-network backwards (`networks`: not a layer pair; the row says what it needs).

How gradients come back is read from the code, the same for every course (the pair adapter,
`adapters/pair.py`): a tuple or a bare array, or a dict keyed `d<argument>` /
`d<parameter key>` (`gradients["dWax"]`); a backward's parameters after its cache
(`activation`, `mode`) are the forward's arguments of the same name.

A name two courses share (`rnn_forward`: cs231n's `(x, h0, Wx, Wh, b)`, deeplearning.ai's
`(x, a0, parameters)`) is resolved by the forward's signature: the first convention whose
candidate example binds to it (`resolve`). Adding a course is one module here and one line
in `CONVENTIONS`.
"""
from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np


class Known(NamedTuple):
    """One name a convention knows."""

    examples: Callable  # rng -> [tuple of positional args (a trailing dict of keyword values)]: candidates
    twin: tuple | Callable | None = None  # (forward, backward) or a loss, in the course's signature
    geometries: int = 1  # how many of the accepted candidates to use as examples
    #: positions of the gradients the course returns as the mean over the batch (1/m, m the
    #: last axis of the upstream gradient: deeplearning.ai's column layout), and their names
    batch_mean: tuple = ()
    batch_mean_names: tuple = ()
    #: the position of a string option (`activation`): besides the candidates' values, every
    #: string the forward or backward compares it with is tried, and each one the code accepts
    #: is checked
    option: int | None = None
    #: the course's documented rule at tied inputs (deeplearning.ai's max-pool mask x == max
    #: gives every tied maximum the gradient): disagreements only on tied cases are reported
    #: as this convention (AMBIGUOUS), not failed
    ties: str = ""


@dataclass(frozen=True)
class Convention:
    name: str  # as the report names it: "cs231n", "deeplearning.ai"
    known: dict
    forward_suffixes: tuple = ("_forward",)  # a backward `<stem>_backward` pairs with `<stem><suffix>`
    losses: tuple = ()  # loss names known without an example
    implicit_globals: dict = field(default_factory=dict)  # name -> module its notebooks import for you
    networks: dict = field(default_factory=dict)  # whole-network backward -> (its forward, its cost or None)


@dataclass
class Resolved:
    """A name resolved to one convention's knowledge: its accepted examples and twin."""

    convention: Convention
    known: Known
    examples: list
    twin: object

    @property
    def source(self):
        return f"known {self.convention.name} geometry"


def conventions():
    from jaxnets.gradcheck.conventions import cs231n, dlai

    return (cs231n.CONVENTION, dlai.CONVENTION)


def binds(forward, candidate):
    """Whether a candidate example call fits the forward's signature (the resolution of a
    name two conventions share: never by running it and blaming the forward)."""
    from jaxnets.gradcheck.adapters.pair import split_example

    try:
        sig = inspect.signature(forward)
    except (TypeError, ValueError):
        return True
    args, kwargs = split_example(forward, candidate)
    try:
        sig.bind(*args, **kwargs)
        return True
    except TypeError:
        return False


def resolve(name, forward, seed=0, backward=None):
    """The Resolved for a forward or loss name: the first convention that knows the name
    and whose candidates bind to the forward's signature; None when no convention knows it
    in that signature."""
    for conv in conventions():
        known = conv.known.get(name)
        if known is None:
            continue
        candidates = known.examples(np.random.default_rng(seed))
        if known.option is not None and candidates:
            base, pos = candidates[0], known.option
            seen = {c[pos] for c in candidates}
            candidates += [base[:pos] + (v,) + base[pos + 1:]
                           for v in option_values((forward, backward), pos) if v not in seen]
        fitting = [c for c in candidates if binds(forward, c)]
        if not fitting:
            continue
        accepted = [args for args in fitting if runs(forward, backward, args)]
        return Resolved(conv, known, (accepted or fitting[:1])[:known.geometries], known.twin)
    return None


def option_values(functions, pos):
    """Strings the functions compare their parameter at `pos` (the forward's) or of the
    same name (the backward's) with: `if activation == "relu"` gives "relu"."""
    import ast
    import textwrap

    found, names = [], set()
    params = _params(functions[0])
    if pos < len(params):
        names.add(params[pos])
    for fn in functions:
        if fn is None or not names:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        except (OSError, TypeError, SyntaxError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                if any(isinstance(x, ast.Name) and x.id in names for x in sides):
                    found += [x.value for x in sides if isinstance(x, ast.Constant) and isinstance(x.value, str)]
    return list(dict.fromkeys(found))


def _params(fn):
    try:
        return [p.name for p in inspect.signature(fn).parameters.values()]
    except (TypeError, ValueError):
        return []


def known_examples(name, forward, seed=0, backward=None):
    """(examples, twin) for a known name (see `resolve`); ([], None) when none knows it."""
    r = resolve(name, forward, seed, backward)
    return (r.examples, r.twin) if r else ([], None)


def runs(forward, backward, args):
    """Whether the pair runs on a candidate (forward, then backward with all-ones upstream
    gradients, its options after the cache taken from the forward's call)."""
    from jaxnets.gradcheck.adapters.pair import backward_call, split_example

    try:
        a, k = split_example(forward, copy.deepcopy(args))
        result = forward(*a, **k)
        if backward is not None:
            n_out, extras = backward_call(forward, backward, a, k)
            outs, cache = result[:n_out], result[-1]
            grads = backward(*[np.ones(np.shape(o)) for o in outs], cache, **extras)
            if grads is None:
                return False
        return True
    except Exception:
        return False


def forward_names(stem):
    """Every name a backward `<stem>_backward` may pair with, over all conventions, in
    order of preference."""
    out = []
    for conv in conventions():
        out += [stem + s for s in conv.forward_suffixes]
    return list(dict.fromkeys(out))


def implicit_globals():
    out = {}
    for conv in conventions():
        for k, v in conv.implicit_globals.items():
            out.setdefault(k, (v, conv.name))
    return out


def network_need(name):
    """(convention name, (forward name, cost name or None)) when `name` is a whole-network
    backward."""
    for conv in conventions():
        if name in conv.networks:
            return conv.name, conv.networks[name]
    return None
