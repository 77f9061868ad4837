"""Before a check: the examples validated, and what probing the subject on them says.

`prepare(subject, examples)` runs the primal and the rule once per example, concretely, and
turns whatever makes a check meaningless — an example the forward rejects, a rule returning
the wrong number or shapes of gradients, NaN/inf — into one `CheckInputError` line. It finds
out which oracles can run (JAX tracing of the primal: autodiff; of the rule: jit, the wired
object, vmap), which positional arguments carry the batch axis, which other leading sizes the
forward accepts, and whether output rows depend only on their own input rows.
"""
from __future__ import annotations

import jax
import numpy as np

from jaxnets.gradcheck import tree
from jaxnets.gradcheck.case import Example
from jaxnets.gradcheck.hints import shape_hint
from jaxnets.gradcheck.subject import RuleError, grads_to_leaves


class CheckInputError(ValueError):
    """Input the checker cannot check; the message is one line saying what is wrong.
    `rule_fault`: the rule itself broke its contract on a valid example (a gradient of the
    wrong number, shape or value): a wrong rule rather than a wrong call."""

    def __init__(self, message, rule_fault=False):
        super().__init__(message)
        self.rule_fault = rule_fault


def first_line(exc, limit=240):
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


def _traces(fn, *args):
    try:
        jax.eval_shape(fn, *args)
        return None
    except Exception as exc:
        return first_line(exc, 100)


def _run_example(subject, ex, rng):
    """(output leaves, gradient leaves) of the rule on an example, validated."""
    args, kwargs = tree.fresh(ex.args), tree.fresh(ex.kwargs)
    who = "forward" if subject.kind in ("pair", "loss") else subject.name
    try:
        outs = subject.primal(*args, **kwargs)
    except Exception as exc:
        raise CheckInputError(f"{who} rejected {ex.label}: {first_line(exc)}") from None
    if outs is None or (isinstance(outs, tuple) and all(o is None for o in outs)):
        raise CheckInputError(f"{who} is not implemented yet (it returns None)")
    leaves, treedef = tree.flat_outputs(outs)
    try:
        leaves = [np.asarray(o, dtype=np.float64) for o in leaves]
    except Exception as exc:
        raise CheckInputError(f"{who}: the outputs must be arrays ({first_line(exc)})") from None
    if not leaves:
        raise CheckInputError(f"{who} returned no output")
    for o in leaves:
        if not np.all(np.isfinite(o)):
            raise CheckInputError(f"{who} returned NaN or inf on {ex.label}")
    if subject.rule is None:
        return leaves, None, treedef
    cot = [rng.standard_normal(o.shape) if o.ndim else np.asarray(rng.uniform(0.5, 2.0)) for o in leaves]
    cot_tree = jax.tree_util.tree_unflatten(treedef, cot)
    wrt = subject.wrt_for(ex.args)
    label = subject.rule_label
    try:
        _, grads = subject.rule(tree.fresh(ex.args), tree.fresh(ex.kwargs), cot_tree)
        if subject.kind == "custom_vjp":
            wrt = _drop_none_cotangents(subject, ex.args, wrt, grads)
            grads = tuple(g for g in grads if g is not None)
        if grads is None or isinstance(grads, (tuple, list)) and grads and all(g is None for g in grads):
            raise CheckInputError(f"{label} is not implemented yet (it returns None)")
        grads = grads_to_leaves(grads, ex.args, wrt, (), label)
    except CheckInputError:
        raise
    except RuleError as exc:
        if subject.kind == "custom_vjp":
            subject.notes["rule hint"] = "JAX itself rejects this under jax.grad"
            return leaves, exc, treedef  # a broken custom_vjp is a failing rule, not bad input
        raise CheckInputError(str(exc), rule_fault=True) from None
    except Exception as exc:
        raise CheckInputError(f"{label} raised on {ex.label}: {first_line(exc)}", rule_fault=True) from None
    sp, diff, _ = tree.split(ex.args, ex.kwargs, wrt, subject.arg_names)
    for name, g, x in zip(sp.names, grads, diff):
        try:
            g = np.asarray(g, dtype=np.float64)
        except Exception as exc:
            raise CheckInputError(f"{label}: the gradient of {name} is not an array ({first_line(exc)})",
                                  rule_fault=True) from None
        if g.shape != np.shape(x):
            hint = shape_hint(g.shape, np.shape(x))
            raise CheckInputError(f"{label} returned d{name} of shape {g.shape}, expected {np.shape(x)} on {ex.label}"
                                  + (f" ({hint})" if hint else ""), rule_fault=True)
        if not np.all(np.isfinite(g)):
            # the rule's fault, not the user's input: the cases show it ("runs, finite" fails
            # where the forward is finite), with a case to re-run, instead of a refusal
            subject.notes.setdefault("non-finite", f"{label} returned NaN or inf in d{name} on {ex.label}")
    if not diff:
        raise CheckInputError("nothing to differentiate: the example has no floating input that is differentiated")
    return leaves, grads, treedef


def _drop_none_cotangents(subject, args, wrt, grads):
    """A custom_vjp's bwd that returns None for an argument claims no gradient for it (JAX
    takes it as zero: clip_gradient's bounds, a loss's labels): it is not differentiated, and
    the report says so."""
    if not isinstance(grads, (tuple, list)) or len(grads) != len(wrt):
        return wrt
    none = tuple(i for i, g in zip(wrt, grads) if g is None)
    if not none:
        return wrt
    names = [subject.arg_names[i] if i < len(subject.arg_names) else f"argument {i}" for i in none]
    subject.notes.setdefault("None cotangents", f"bwd returns None for {', '.join(names)}: not differentiated (JAX "
                                                f"treats None as a zero cotangent; the rule claims no gradient there)")
    base = subject.wrt
    subject.wrt = lambda a: tuple(i for i in (base(a) if callable(base) else base) if i not in none)
    subject.rule = _without(subject.rule, none, base)
    return tuple(i for i in wrt if i not in none)


def _without(rule, none, base):
    def wrapped(args, kwargs, cot):
        out, cts = rule(args, kwargs, cot)
        positions = base(args) if callable(base) else base
        return out, tuple(c for i, c in zip(positions, cts) if i not in none)

    return wrapped


def prepare(subject, examples, rng=None, try_sizes=True):
    """Validate the subject on every example and probe it; returns the facts as a dict
    (batched, leading_sizes, rows_independent, scalar_out) and sets subject.jax_primal /
    jax_rule and its notes."""
    rng = rng or np.random.default_rng(0)
    for k, ex in enumerate(examples):
        result = _run_example(subject, ex, rng)
        if k == 0:
            outs = result[0]  # the first example's outputs: the one probed below
    ex0 = examples[0]
    bound, diff, arrays = subject.bind(ex0.args, ex0.kwargs)
    why = _traces(lambda d, a: bound.outputs(d, a), diff, arrays)
    subject.jax_primal = why is None
    if why:
        subject.notes.setdefault("autodiff", f"the forward is not JAX-traceable ({why})")
    elif subject.jax_vjp is None and diff:
        cot = [np.zeros(o.shape) for o in outs]
        why_vjp = _traces(lambda d, a, c: bound.vjp_of(subject.primal, d, a, c), diff, arrays, cot)
        subject.jax_vjp = why_vjp is None
        if why_vjp:
            subject.notes.setdefault("autodiff", f"reverse-mode autodiff of your primal fails ({why_vjp}); the dot "
                                                 f"product with its forward mode stands in for it")
    if subject.rule is not None and subject.jax_rule is None:
        cot = [np.zeros(o.shape) for o in outs]
        bound.out_treedef = tree.flat_outputs(subject.primal(*tree.fresh(ex0.args), **tree.fresh(ex0.kwargs)))[1]
        why_rule = _traces(lambda d, a, c: bound.rule(d, a, c), diff, arrays, cot)
        subject.jax_rule = why_rule is None and subject.jax_primal
        if why_rule:
            subject.notes.setdefault("custom_vjp", f"the {subject.rule_label} is not JAX-traceable ({why_rule})")
            subject.notes.setdefault("transforms", "jit and vmap need a JAX-traceable rule")
    facts = {"scalar_out": len(outs) == 1 and outs[0].ndim == 0}
    facts.update(_probe_batch(subject, ex0, outs, try_sizes))
    return facts


def _probe_batch(subject, ex, outs, try_sizes):
    """Which positional arguments carry the batch axis, the leading sizes the forward also
    accepts, and whether its output rows depend only on their own input rows."""
    facts = {"batched": (), "leading_sizes": (), "rows_independent": False}
    first = ex.args[0] if ex.args else None
    if not tree.is_array(first) or not np.ndim(first):
        subject.notes.setdefault("leading sizes", "the first input has no leading (batch) axis")
        return facts
    n = np.shape(first)[0]
    sizes = tuple(s for s in (1, n + 1) if s != n) if try_sizes else ()
    same = tuple(k for k, a in enumerate(ex.args) if tree.is_array(a) and np.ndim(a) and np.shape(a)[0] == n)
    out0 = outs[0]
    reason = "no size tried"
    from jaxnets.gradcheck.case import resized

    for batched in dict.fromkeys(((0,), same)):  # the first argument alone, else every one of its size
        try:
            got = {s: [np.asarray(o) for o in tree.flat_outputs(subject.primal(
                *tree.fresh(resized(ex, batched, s).args), **tree.fresh(ex.kwargs)))[0]] for s in sizes}
        except Exception as exc:
            reason = first_line(exc)
            continue
        if all(o[0].ndim == out0.ndim and (not o[0].ndim or o[0].shape[0] == s or o[0].shape == out0.shape)
               for s, o in got.items()):
            facts["batched"], facts["leading_sizes"] = batched, sizes
            break
        reason = "the output's leading size does not follow the input's"
    else:
        subject.notes.setdefault("leading sizes", f"only the examples' leading sizes: the forward rejected "
                                                  f"N={sizes} ({reason})")
        return facts
    if not try_sizes:
        subject.notes.setdefault("leading sizes", "not tried")
    if all(o.ndim and o.shape[0] == n for o in outs) and n > 1:
        last = resized(Example(tuple(a[-1:] if k in facts["batched"] else a for k, a in enumerate(ex.args)),
                               ex.kwargs), (), 1)
        try:
            row = [np.asarray(o, np.float64) for o in tree.flat_outputs(
                subject.primal(*tree.fresh(last.args), **tree.fresh(ex.kwargs)))[0]]
            facts["rows_independent"] = all(r.shape == o[-1:].shape and np.allclose(r, o[-1:], rtol=1e-9, atol=1e-12)
                                             for r, o in zip(row, outs))
        except Exception:
            pass
    if not facts["rows_independent"]:
        subject.notes.setdefault("vmap", "rows are not independent (a row's output depends on other rows, or N = 1)")
    return facts
