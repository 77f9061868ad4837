"""The thing a check is about: a primal function and the derivative rule claimed for it.

Every kind of code the checker meets becomes one `Subject` (the adapters in
`jaxnets.gradcheck.adapters`: a cs231n pair or loss, a `jax.custom_vjp` or `jax.custom_jvp`
object, a plain JAX function, a built-in op, a model in its gradient modes):

- `primal(*args, **kwargs) -> outputs` (a pytree of arrays): the function itself, without the
  rule — a custom_vjp's undecorated function, a pair's forward without its cache;
- `rule(args, kwargs, cotangents) -> (outputs, grads)`: the claimed reverse-mode derivative,
  one gradient pytree per differentiated argument (None for a zero one), called as the user's
  code would be (a pair's backward on the forward's cache, a custom_vjp's fwd then bwd);
- `jvp_rule(args, kwargs, tangents) -> (outputs, output tangents)`: a claimed forward-mode
  rule (custom_jvp);
- `wired(*args, **kwargs) -> outputs`: the user's own differentiable object — the custom_vjp
  or custom_jvp itself, or the pair wired into a `jax.custom_vjp` — what `jax.grad` meets
  when the rule is used in context (and what second order differentiates);
- `wrt`: the differentiated positional arguments; `reference`: another Subject whose
  derivative is trusted (the project's NumPy twin);
- `sources`: extra named gradient sources (a model's gradient modes).

`Bound` is a Subject at one call signature (`tree.Split`): the same functions in flat form —
lists of differentiated leaves, other arrays, output leaves — which is what every oracle
works on, its jitted versions kept in the checker's bounded store of compiled programs
(`jaxnets.gradcheck.programs.ProgramLRU`) under explicit keys.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxnets.gradcheck.programs import ProgramLRU
from jaxnets.gradcheck import tree

#: compiled programs the checker keeps alive, all subjects together; the least recently used
#: is dropped. Each XLA:CPU executable holds ~50 memory mappings, and a process may have
#: 65530 (vm.max_map_count): the whole test suite, kept unbounded, crashed XLA's compiler.
#: A key is (the Subject, oracle, call signature), or, for a program of the primal alone
#: (autodiff, finite differences), (its `primal_key`, ...): a catalogue of mutant backwards of
#: one forward, or a user re-checking a rule, compiles the forward once.
PROGRAMS = ProgramLRU(maxsize=384)


def clear_programs():
    """Drop every compiled program the checker keeps (a long session's memory back)."""
    PROGRAMS.clear()


class RuleError(Exception):
    """The rule broke its own contract (wrong number or structure of gradients): a failure
    of the rule, reported with this message."""


@dataclass(eq=False)  # a subject is itself: hashed by identity (the program cache keys on it)
class Subject:
    name: str
    kind: str  # "pair" | "loss" | "custom_vjp" | "custom_jvp" | "function" | "op" | "model"
    primal: Callable
    rule: Callable | None = None
    jvp_rule: Callable | None = None
    wired: Callable | None = None
    #: the differentiated positional arguments: indices, a function of the call's args, or
    #: None: every positional argument that is a floating array
    wrt: tuple | Callable | None = None
    arg_names: tuple = ()
    output_names: tuple = ()
    reference: "Subject | None" = None
    rule_label: str = "backward"  # how the report names the rule
    #: as a reference: whether it defines the convention at kinks (given by the user), or is
    #: a twin the project supplied (then kinks are judged as between any two sources)
    convention: bool = True
    #: the rule is NumPy code that may write into its arguments: it is given copies
    copies: bool = True
    #: whether JAX can trace the primal / the rule (set by probing; None = not yet known)
    jax_primal: bool | None = None
    jax_rule: bool | None = None
    #: whether reverse-mode autodiff of the primal works (not through lax.while_loop, ...)
    jax_vjp: bool | None = None
    sources: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)  # oracle -> why it did not run
    #: a hashable identity of the primal (the user's forward and how it is called), under
    #: which its programs are shared between subjects; None: not shared
    primal_key: tuple | None = None
    #: a hashable identity of all the code the subject calls (the user's objects themselves),
    #: under which its programs are kept: checking the same rule again (another seed, another
    #: test, a re-run) reuses them instead of compiling each anew; None: this Subject's own
    code_key: tuple | None = None

    def wrt_for(self, args):
        if callable(self.wrt):
            return tuple(self.wrt(args))
        if self.wrt is not None:
            return tuple(self.wrt)
        return tuple(i for i, a in enumerate(args) if tree.is_float_array(a))

    def jitted(self, key, build, shared=False):
        """jax.jit(build()) cached under `key` for this Subject — or, for a program of the
        primal alone (`shared`), under the primal's identity — in the module's one bounded
        LRU of compiled programs."""
        if shared and self.primal_key is not None:
            owner = ("primal", self.primal_key)
        else:
            owner = ("code", self.code_key) if self.code_key is not None else self
        try:
            hash(owner)
        except TypeError:  # user code that is not hashable (an object defining __eq__ only)
            owner = self
        return PROGRAMS.get((owner, key), lambda: jax.jit(build()))

    def bind(self, args, kwargs):
        """(Bound, diff leaves, array leaves) for a call."""
        wrt = self.wrt_for(args)
        sp, diff, arrays = tree.split(args, kwargs, wrt, self.arg_names)
        shapes = tuple((np.shape(a), str(getattr(a, "dtype", type(a).__name__))) for a in diff + arrays)
        return Bound(self, sp, wrt, shapes), diff, arrays


def grads_to_leaves(grads, args, wrt, sp_names, who="the rule"):
    """A rule's gradients (one pytree per differentiated argument, None for zero) as the
    flat list of the differentiated leaves; RuleError when their number or structure is
    not the arguments'."""
    if not isinstance(grads, (tuple, list)):
        if not hasattr(grads, "shape"):
            raise RuleError(f"{who} returned {type(grads).__name__}, expected one gradient per differentiated "
                            f"argument ({len(wrt)})")
        grads = (grads,)  # the cs231n convention: a bare array for one input
    if len(grads) != len(wrt):
        raise RuleError(f"{who} returned {len(grads)} gradient(s), expected {len(wrt)} (one per differentiated "
                        f"argument)")
    out = []
    for g, i in zip(grads, wrt):
        arg = args[i]
        if g is None:
            out += [jnp.zeros(np.shape(a), a.dtype) for a in jax.tree_util.tree_leaves(arg) if tree.is_float_array(a)]
            continue
        arg_leaves, arg_def = jax.tree_util.tree_flatten(arg)
        g_leaves, g_def = jax.tree_util.tree_flatten(g, is_leaf=lambda v: v is None)
        if g_def != arg_def and not (len(arg_leaves) == 1 == len(g_leaves)):
            raise RuleError(f"{who}: the gradient of argument {i} has structure {g_def}, the argument {arg_def}")
        for a, ga in zip(arg_leaves, g_leaves):
            if tree.is_float_array(a):
                out.append(jnp.zeros(np.shape(a), a.dtype) if ga is None else ga)
    return out


def leaves_to_args(diff, args, wrt):
    """The differentiated leaves put back as one pytree per `wrt` argument (tangents)."""
    out, it = [], iter(diff)
    for i in wrt:
        leaves, treedef = jax.tree_util.tree_flatten(args[i])
        out.append(jax.tree_util.tree_unflatten(
            treedef, [next(it) if tree.is_float_array(a) else np.zeros(np.shape(a), jax.dtypes.float0)
                      for a in leaves]))
    return tuple(out)


class Bound:
    """A Subject at one call signature: flat functions of (diff leaves, array leaves)."""

    def __init__(self, subject, sp, wrt, shapes=()):
        self.subject, self.sp, self.wrt = subject, sp, wrt
        self.shapes = shapes  # of the leaves: part of every program's key, so one key is one executable

    @property
    def names(self):
        return self.sp.names

    def call_args(self, diff, arrays):
        return tree.join(self.sp, diff, arrays)

    # ------------------------------------------------------------------ flat functions

    def outputs(self, diff, arrays, fn=None):
        """Output leaves of the primal (or `fn`, same signature) at these leaves."""
        args, kwargs = self.call_args(diff, arrays)
        return tree.flat_outputs((fn or self.subject.primal)(*args, **kwargs))[0]

    def rule(self, diff, arrays, cot, copies=False):
        """(output leaves, gradient leaves) of the rule for output cotangent leaves `cot`."""
        s = self.subject
        args, kwargs = self.call_args(diff, arrays)
        if copies:
            args, kwargs = tree.fresh(args), tree.fresh(kwargs)
        outs, grads = s.rule(args, kwargs, self.cot_tree(cot))
        return tree.flat_outputs(outs)[0], grads_to_leaves(grads, args, self.wrt, self.names, s.rule_label)

    def jvp_rule(self, diff, arrays, tangents):
        """(output leaves, output tangent leaves) of the forward-mode rule."""
        args, kwargs = self.call_args(diff, arrays)
        outs, touts = self.subject.jvp_rule(args, kwargs, leaves_to_args(tangents, args, self.wrt))
        return tree.flat_outputs(outs)[0], tree.flat_outputs(touts)[0]

    def vjp_of(self, fn, diff, arrays, cot):
        """jax.vjp of `fn` (primal or wired) w.r.t. the differentiated leaves."""
        outs, pull = jax.vjp(lambda *d: self.outputs(list(d), arrays, fn), *diff)
        cot = [jnp.asarray(c, o.dtype) for c, o in zip(cot, outs)]
        return outs, list(pull(cot))

    def jvp_of(self, fn, diff, arrays, tangents):
        """jax.jvp of `fn` w.r.t. the differentiated leaves."""
        outs, touts = jax.jvp(lambda *d: self.outputs(list(d), arrays, fn), tuple(diff),
                              tuple(jnp.asarray(t, d.dtype) for t, d in zip(tangents, diff)))
        return list(outs), list(touts)

    def cot_tree(self, cot):
        """Cotangent leaves as the outputs' pytree (a single array for one output)."""
        td = self.out_treedef
        return jax.tree_util.tree_unflatten(td, list(cot)) if td is not None else cot

    out_treedef = None  # set by the engine from the primal's outputs

    def key(self, role):
        return (role, self.sp.key, self.out_treedef, self.shapes)
