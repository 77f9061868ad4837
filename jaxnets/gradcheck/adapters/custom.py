"""JAX's own custom-derivative objects as Subjects, checked as written.

- `jax.custom_vjp` f: the primal is `f.fun` (the undecorated function), the rule its
  `f.fwd` / `f.bwd` called as JAX calls them — `bwd(*nondiff_args, residuals, g)` returning one
  cotangent per differentiable argument (a tuple, even for one; None for a zero one; pytrees
  like the arguments) — and the wired object is f itself: in context and at second order
  `jax.grad` differentiates the user's own object. A bwd that returns a bare array, or the
  wrong number or structure of cotangents, fails as JAX would make `jax.grad` fail, with the
  reason.
- `jax.custom_jvp` f: the primal is `f.fun`, the claimed forward-mode rule `f.jvp`
  (`jvp(*nondiff_args, primals, tangents)`), checked against finite differences and
  `jax.jvp` of the primal; its reverse-mode derivative is JAX's transposition of that rule
  (`jax.vjp(f)`), checked against every reverse-mode oracle.
- any other JAX-traceable function: JAX's own derivative of it (`jax.vjp(f)`, custom rules
  inside included) against finite differences, second order and the dot-product identity —
  what `jax.test_util.check_grads` does, with kinks told apart.

`unwrap` finds the custom object inside `jax.jit`, `functools.wraps` layers and `jnp` ufuncs.
Arguments are positional (keyword values are bound to their positions first).
"""
from __future__ import annotations

import inspect

import jax

from jaxnets.gradcheck import tree
from jaxnets.gradcheck.subject import RuleError, Subject


def unwrap(obj):
    """(the custom_vjp / custom_jvp object inside obj or obj itself, how it was wrapped)."""
    seen, how = set(), []
    cur = obj
    while id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (jax.custom_vjp, jax.custom_jvp)):
            return cur, how
        inner = getattr(cur, "_func", None) if type(cur).__name__ == "ufunc" else None
        inner = inner or getattr(cur, "__wrapped__", None)
        if inner is None:
            break
        how.append(type(cur).__name__)
        cur = inner
    return obj, []


def kind_of(obj):
    inner, _ = unwrap(obj)
    if isinstance(inner, jax.custom_vjp):
        return "custom_vjp"
    if isinstance(inner, jax.custom_jvp):
        return "custom_jvp"
    return "function"


def _names(fn):
    try:
        return tuple(p.name for p in inspect.signature(fn).parameters.values()
                     if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    except (TypeError, ValueError):
        return ()


def positional(fn, args, kwargs):
    """(args, {}) with keyword values bound to their positions in fn's signature."""
    if not kwargs:
        return tuple(args), {}
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        raise RuleError(f"cannot bind the example to {getattr(fn, '__name__', 'the function')}: {exc}") from None
    bound.apply_defaults()
    return tuple(bound.args), dict(bound.kwargs)


def _diff_positions(n, nondiff):
    return tuple(i for i in range(n) if i not in nondiff)


def custom_vjp_subject(obj, name=None):
    f, how = unwrap(obj)
    nondiff = tuple(f.nondiff_argnums)
    fwd, bwd = f.fwd, f.bwd
    bwd_name = getattr(bwd, "__name__", "bwd")

    def rule(args, kwargs, cot):
        diff = _diff_positions(len(args), nondiff)
        result = fwd(*args, **kwargs)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise RuleError(f"{getattr(fwd, '__name__', 'fwd')} must return (output, residuals); got "
                            f"{type(result).__name__}")
        out, res = result
        cts = bwd(*(args[i] for i in nondiff), res, cot)
        if not isinstance(cts, (tuple, list)):
            raise RuleError(f"{bwd_name} returned a bare {type(cts).__name__}, not a tuple with one cotangent per "
                            f"differentiable argument ({len(diff)}): jax.grad of your function raises TypeError "
                            f"(write `return (g,)` for one argument)")
        if len(cts) != len(diff):
            raise RuleError(f"{bwd_name} returned {len(cts)} cotangent(s), expected {len(diff)} (one per argument "
                            f"not in nondiff_argnums{' ' + str(nondiff) if nondiff else ''})")
        # integer and boolean arrays (indices, masks) get None or float0 from bwd: not differentiated
        return out, tuple(ct for i, ct in zip(diff, cts) if not _array_of_numbers(args[i]))

    subject = Subject(name or getattr(f, "__name__", "f"), "custom_vjp", f.fun, rule, wired=f,
                      wrt=None, arg_names=_names(f.fun), rule_label="bwd", copies=False, primal_key=("fun", f.fun),
                      code_key=("custom_vjp", f, f.fun, fwd, bwd, nondiff, getattr(f, "symbolic_zeros", False)))
    subject.wrt = _positions(nondiff, arrays_of_numbers=True)
    if getattr(f, "symbolic_zeros", False):
        # fwd then receives CustomVJPPrimal wrappers: let JAX call fwd/bwd itself
        subject.rule = _transposed(f, subject)
        subject.notes["rule"] = "symbolic_zeros=True: fwd and bwd called by JAX (jax.vjp of your function)"
    if how:
        subject.notes["unwrapped"] = f"the custom_vjp inside {' > '.join(how)}"
    return subject


def _positions(nondiff, arrays_of_numbers=False):
    """wrt for a custom rule: every position not in nondiff_argnums (`arrays_of_numbers`: nor
    an integer or boolean array, whose cotangent is None or float0)."""
    def wrt(args):
        return tuple(i for i in _diff_positions(len(args), nondiff)
                     if not (arrays_of_numbers and _array_of_numbers(args[i])))
    return wrt


def _array_of_numbers(a):
    """An integer or boolean array (indices, a mask): no cotangent."""
    return tree.is_array(a) and not tree.is_float_array(a)


def _transposed(f, subject):
    def rule(args, kwargs, cot):
        wrt = subject.wrt_for(args)

        def on(*w):
            full = list(args)
            for i, x in zip(wrt, w):
                full[i] = x
            return f(*full, **kwargs)

        out, pull = jax.vjp(on, *(args[i] for i in wrt))
        return out, pull(cot)

    return rule


def custom_jvp_subject(obj, name=None):
    f, how = unwrap(obj)
    nondiff = tuple(f.nondiff_argnums)

    def jvp_rule(args, kwargs, tangents):
        diff = _diff_positions(len(args), nondiff)
        primals = tuple(args[i] for i in diff)
        result = f.jvp(*(args[i] for i in nondiff), primals, tuple(tangents))
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise RuleError(f"the jvp rule must return (primal_out, tangent_out); got {type(result).__name__}")
        return result

    subject = Subject(name or getattr(f, "__name__", "f"), "custom_jvp", f.fun, None, jvp_rule, wired=f,
                      arg_names=_names(f.fun), rule_label="transposed jvp", copies=False, primal_key=("fun", f.fun),
                      code_key=("custom_jvp", f, f.fun, f.jvp, nondiff))
    subject.wrt = _positions(nondiff)
    subject.rule = _transposed(f, subject)
    if how:
        subject.notes["unwrapped"] = f"the custom_jvp inside {' > '.join(how)}"
    return subject


def function_subject(fn, name=None):
    subject = Subject(name or getattr(fn, "__name__", "f"), "function", fn, None, wired=fn, arg_names=_names(fn),
                      rule_label="jax.vjp", copies=False, code_key=("function", fn))
    subject.rule = _transposed(fn, subject)
    return subject


def custom_subject(obj, name=None):
    """The Subject for a custom_vjp, custom_jvp or plain JAX function."""
    kind = kind_of(obj)
    if kind == "custom_vjp":
        return custom_vjp_subject(obj, name)
    if kind == "custom_jvp":
        return custom_jvp_subject(obj, name)
    return function_subject(obj, name)
