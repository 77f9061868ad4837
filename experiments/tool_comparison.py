"""What three gradient checkers catch on the same planted mistakes, side by side.

jaxnets' `check` (it generates its own cases from the example), JAX's `check_grads(order=2)`
and torch's `gradcheck` / `gradgradcheck` run with their default tolerances, in float64, on
one random normal example of the layer's usual shape: what a user would hand each of them.
The mistakes are the project's planted mutants (`mutants.MUTANTS`, `mutants.custom`); each
runs beside its correct version, which must pass in every tool (else a catch means nothing).

How each tool is fed: jaxnets gets the code as a user wrote it (a cs231n pair via `backward=`,
a loss returning (loss, dscores), a custom_vjp / custom_jvp object). check_grads needs a JAX
function: a pair is wired as a custom_vjp by `jaxnets.ops.vjp.manual_vjp`, a loss by
`loss_vjp`; a custom_vjp cannot be jvp'd, so those run with modes=("rev",). torch gets a
`torch.autograd.Function` port whose backward recomputes what it needs from saved tensors
with differentiable torch ops (torch's idiom, so that gradgradcheck can run at all).

    python -m experiments.tool_comparison [--json PATH] [--cases N] [--no-torch] > table.md
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

from jaxnets import ops
from jaxnets.ops.vjp import loss_vjp, manual_vjp
from jaxnets.gradcheck import CheckInputError, check
from jaxnets.gradcheck.tolerances import precise_jax
from jaxnets.conformance.mutants import MUTANTS
from jaxnets.conformance.mutants.losses import loss_vjp_ignoring_cotangent
from jaxnets.conformance.mutants.custom import CUSTOM_MUTANTS, cos_update
from reference_numpy import layers as npl

#: jaxnets cases per check (its default is 60; 24 keeps the run lean on a shared machine)
CASES = 24
TOOLS = ("jaxnets", "check_grads", "gradcheck", "gradgradcheck")
HEADERS = ("jaxnets check", "check_grads(order=2)", "torch gradcheck", "torch gradgradcheck")

_M = {m.name: m for m in MUTANTS}
_C = {m.name: m for m in CUSTOM_MUTANTS}
_RNG = np.random.default_rng(0)
_X = _RNG.standard_normal((4, 5))
_IMAGES = _RNG.standard_normal((2, 3, 4, 4))
_CONV = (_RNG.standard_normal((2, 3, 5, 5)), _RNG.standard_normal((4, 3, 3, 3)), _RNG.standard_normal(4))
_BN = (_RNG.standard_normal((8, 5)), _RNG.standard_normal(5), _RNG.standard_normal(5))
_SCORES, _LABELS = _RNG.standard_normal((4, 10)), _RNG.integers(0, 10, 4)


class Mistake(NamedTuple):
    name: str
    what: str
    example: tuple  # NumPy arrays of one valid call (integer arrays are labels: never differentiated)
    jaxnets: Callable  # (bad, cases, **check options) -> Report
    jax_fn: Callable  # bad -> the JAX function check_grads differentiates in its float arguments
    modes: tuple  # check_grads' modes
    torch: Callable | str  # (torch, bad) -> a function of tensors; or why there is no port
    note: str = ""
    reference: tuple | None = None  # a trusted pair: jaxnets also runs with reference= (a second opinion)


# ----------------------------------------------------------------------------- the JAX side

def _pair(name, forward, backward, example, static=None, torch=None, reference=None):
    """A catalogue mutant of a (forward, backward) pair; `static`: keyword values of the call."""
    bwd = lambda bad: _M[name].fn if bad else backward  # noqa: E731
    static = static or {}

    def jax_fn(bad):  # the statics become nondiff arguments of the custom_vjp, bound here
        n = len(example)
        f = manual_vjp(forward, bwd(bad), nondiff_argnums=tuple(range(n, n + len(static))))
        return lambda *a: f(*a, *static.values())

    return Mistake(name, _M[name].description, example,
                   lambda bad, cases, **kw: check(forward, *example, backward=bwd(bad), kwargs=static, cases=cases,
                                                  **kw),
                   jax_fn, ("rev",), torch, "check_grads: the pair wired as a custom_vjp by manual_vjp", reference)


def _loss(name, loss_of, torch, note=""):
    """A loss mutant; `loss_of(bad)` -> the (loss, dscores) function, or a custom_vjp object."""
    fed = "jaxnets and check_grads: the custom_vjp object" if isinstance(loss_of(False), jax.custom_vjp) else \
        "jaxnets: the (loss, dscores) function; check_grads: it wired by loss_vjp"

    def jax_fn(bad):
        f = loss_of(bad)
        f = f if isinstance(f, jax.custom_vjp) else loss_vjp(f)
        return lambda s: f(s, _LABELS)

    return Mistake(name, _M[name].description, (_SCORES, _LABELS),
                   lambda bad, cases: check(loss_of(bad), _SCORES, _LABELS, cases=cases), jax_fn, ("rev",), torch,
                   fed + (f"; {note}" if note else ""))


def _custom(name, torch, modes, bind=None, note=""):
    """A mutant of mutants.custom (a custom_vjp / custom_jvp object) on its own example;
    `bind` turns it into a function of its float arguments."""
    m = _C[name]
    obj = lambda bad: m.mutant if bad else m.correct  # noqa: E731
    floats = tuple(np.asarray(a) for a in m.example if not callable(a))
    return Mistake(name, m.description, floats, lambda bad, cases: check(obj(bad), *m.example, cases=cases),
                   lambda bad: bind(obj(bad)) if bind else obj(bad), modes, torch, note)


# ----------------------------------------------------------------------------- the torch ports

def _function(torch, forward, backward, detach_out=False):
    """A torch.autograd.Function of `forward(*inputs)` and `backward(g, out, *inputs)`. The
    output is saved as an output (double backward sees it depend on the inputs) unless
    detach_out: torch's twin of a JAX `stop_gradient` residual."""
    class Port(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *inputs):
            out = forward(*inputs)
            ctx.save_for_backward(out.detach().clone() if detach_out else out, *inputs)
            return out

        @staticmethod
        def backward(ctx, g):
            out, *inputs = ctx.saved_tensors
            grads = backward(g, out, *inputs)
            return grads if isinstance(grads, tuple) else (grads,)

    return Port.apply


def _elementwise(forward, rule, wrong_rule, detach_out=False):
    """(torch, bad) -> the port of an elementwise op; a rule is `rule(torch, g, out, x)`."""
    return lambda t, bad: _function(t, partial(forward, t), partial(wrong_rule if bad else rule, t), detach_out and bad)


_TANH = (lambda t, x: t.tanh(x), lambda t, g, y, x: g * (1 - y * y))
_RELU = (lambda t, x: t.where(x > 0, x, 0.0), lambda t, g, y, x: g * (x > 0))
_POW = (lambda t, x: x * t.sqrt(x), lambda t, g, y, x: 1.5 * t.sqrt(x) * g)


def _max_pool(torch, bad):  # 2x2 windows, stride 2, as windows on a last axis of 4
    def windows(x):
        n, c, h, w = x.shape
        return x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(3, 4).reshape(n, c, h // 2, w // 2, 4)

    def backward(g, out, x):
        win = windows(x)
        mask = win == out[..., None] if bad else torch.nn.functional.one_hot(win.argmax(-1), 4)  # the first maximum
        n, c, h, w = x.shape
        return (mask * g[..., None]).reshape(n, c, h // 2, w // 2, 2, 2).transpose(3, 4).reshape(x.shape)
    return _function(torch, lambda x: windows(x).amax(-1), backward)


def _conv(torch, bad):  # stride 1, pad 1; the mistake keeps the padded (H + 2, W + 2) dx
    nn = torch.nn

    def backward(g, out, x, w, b):
        dx = nn.functional.conv_transpose2d(g, w, padding=0 if bad else 1)
        return dx, nn.grad.conv2d_weight(x, w.shape, g, padding=1), g.sum((0, 2, 3))
    return _function(torch, lambda x, w, b: nn.functional.conv2d(x, w, b, padding=1), backward)


def _batchnorm(torch, bad):
    def normalise(x):
        inv_std = 1 / torch.sqrt(x.var(0, unbiased=False) + 1e-5)
        return (x - x.mean(0)) * inv_std, inv_std

    def backward(g, out, x, gamma, beta):
        xhat, inv_std = normalise(x)
        dxhat, m = g * gamma, x.shape[0]
        variance_share = 0 if bad else xhat * (dxhat * xhat).sum(0)
        return inv_std / m * (m * dxhat - dxhat.sum(0) - variance_share), (g * xhat).sum(0), g.sum(0)
    return _function(torch, lambda x, gamma, beta: gamma * normalise(x)[0] + beta, backward)


def _softmax(wrong, torch, bad):
    def probs(s):
        e = torch.exp(s)  # the unstable form: no max subtracted
        return e / e.sum(1, keepdim=True) if bad and wrong == "unstable" else torch.softmax(s, 1)

    def backward(g, out, s, y):
        d = probs(s) - torch.nn.functional.one_hot(y, s.shape[1])
        d = d if bad and wrong == "sum" else d / len(y)
        return (d if bad and wrong == "ignore g" else g * d), None
    return _function(torch, lambda s, y: -torch.log(probs(s))[torch.arange(len(y)), y].mean(), backward)


def _fixed_point(torch, bad):
    def iterate(step, x0, tol):  # the JAX tutorial's loop: until an update moves less than tol
        prev, x = x0, step(x0)
        while float(torch.abs(prev - x).detach()) > tol:
            prev, x = x, step(x)
        return x

    def backward(g, x_star, a, x0):  # w = g + f_x w by iteration; da = w, dx0 = 0
        fx = -0.5 * torch.sin(x_star)
        return iterate(lambda u: g + fx * u, g, 1e-7 if bad else 1e-14), torch.zeros_like(x0)
    return _function(torch, lambda a, x0: iterate(lambda x: a + 0.5 * torch.cos(x), x0, 1e-14), backward)


MISTAKES = (
    _pair("tanh_grad_from_preactivation", ops.tanh_forward, ops.tanh_backward, (_X,),
          torch=_elementwise(*_TANH, lambda t, g, y, x: g * (1 - t.atanh(y) ** 2))),
    _pair("relu_backward_without_mask", ops.relu_forward, ops.relu_backward, (_X,),
          torch=_elementwise(*_RELU, lambda t, g, y, x: g)),
    _pair("relu_grad_one_at_zero", ops.relu_forward, ops.relu_backward, (_X,),
          torch=_elementwise(*_RELU, lambda t, g, y, x: g * (x >= 0)), reference=(npl.relu_forward, npl.relu_backward)),
    _pair("max_pool_grad_to_all_tied_maxima", ops.max_pool_forward, ops.max_pool_backward, (_IMAGES,),
          torch=_max_pool),
    _pair("conv_dx_padding_not_stripped", ops.conv_forward, ops.conv_backward, _CONV, {"stride": 1, "pad": 1},
          torch=_conv),
    _pair("batchnorm_dx_missing_variance_term", ops.batchnorm_forward, ops.batchnorm_backward, _BN,
          torch=_batchnorm),
    _loss("unstable_softmax", lambda bad: _M["unstable_softmax"].fn if bad else ops.softmax_loss,
          partial(_softmax, "unstable"), "only scores large enough to overflow exp show it (the project's "
          "tests/test_mutants.py catches it on the catalogue's stress cases)"),
    _loss("softmax_missing_1_over_n", lambda bad: _M["softmax_missing_1_over_n"].fn if bad else ops.softmax_loss,
          partial(_softmax, "sum")),
    _loss("loss_vjp_ignores_cotangent",
          lambda bad: (loss_vjp_ignoring_cotangent if bad else loss_vjp)(ops.softmax_loss),
          partial(_softmax, "ignore g")),
    _custom("custom_vjp_stop_gradient_residual", _elementwise(*_TANH, _TANH[1], detach_out=True), ("rev",),
            note="torch: the saved output detached"),
    _custom("fixed_point_backward_not_converged", _fixed_point, ("rev",),
            bind=lambda f: lambda a, x0: f(cos_update, a, x0), note="check_grads: f = cos_update bound"),
    _custom("custom_jvp_wrong_at_kink", _elementwise(*_RELU, lambda t, g, y, x: t.where(x == 0, 2 * g, g * (x > 0))),
            ("fwd", "rev"), note="torch: a backward with the same 2g at 0"),
    _custom("custom_jvp_nan_at_boundary", _elementwise(*_POW, lambda t, g, y, x: 1.5 * x / t.sqrt(x) * g),
            ("fwd", "rev"), note="the example: |x| + 0.1, mutants.custom's"),
    _custom("custom_vjp_bwd_returns_bare_array", "torch accepts a bare tensor from backward for one input: "
                                                 "the mistake does not exist there", ("rev",)),
)


# ----------------------------------------------------------------------------- running the tools

def _short(exc):
    """One line from an exception: its type, what disagreed and by how much."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    head = [ln for ln in lines if not ln.startswith(("Not equal to tolerance", "Mismatched"))][:1]
    key = [ln.replace(" among violations", "") for ln in lines if ln.startswith("Max relative")][:1]
    return f"{type(exc).__name__}: " + "; ".join(head + key)[:150]


def _timed(thunk, mismatch):
    """{outcome: pass | fail | error, detail, seconds}; `thunk()` returns None or what failed,
    or raises `mismatch` (the tool's verdict) or anything else (a refusal to run)."""
    start = time.perf_counter()
    try:
        detail = thunk()
        kind = "pass" if detail is None else "fail"
    except mismatch as exc:
        kind, detail = "fail", _short(exc)
    except Exception as exc:
        kind, detail = "error", _short(exc)
    return {"outcome": kind, "detail": detail or "", "seconds": round(time.perf_counter() - start, 2)}


def _compare(one, mismatch, note=""):
    """The tool (`one(bad)`) on the correct version, then on the mutant, and its verdict. A
    refusal counts as a catch for the mutant (the user sees an error) and as a false alarm
    for the correct version."""
    good, bad = _timed(partial(one, False), mismatch), _timed(partial(one, True), mismatch)
    if good["outcome"] != "pass":
        verdict, reason = "false alarm", f"the correct version: {good['detail']}"
    elif bad["outcome"] == "pass":
        verdict, reason = "missed", "passes"
    else:
        verdict, reason = "caught", ("raised " if bad["outcome"] == "error" else "") + bad["detail"]
    return {"verdict": verdict, "reason": reason, "note": note, "seconds": bad["seconds"], "correct": good,
            "mutant": bad}


def _jaxnets(m, cases, **options):
    flagged = {}

    def one(bad):
        report = m.jaxnets(bad, cases, **options)
        failing = [k for k, r in report.rows.items() if r.status == "fail"]
        if bad and not failing and report.status == "domain":
            flagged["domain"] = True  # not a gradient verdict, but the report shows it
        return f"{len(failing)} rows fail: " + ", ".join(failing) if failing else None
    result = _compare(one, CheckInputError)
    if flagged and result["verdict"] == "missed":
        result["reason"] = ("passes, with a DOMAIN note: the forward is not finite on the generated large values "
                            "(exit status 0; not a gradient verdict)")
    return result


def _check_grads(m, order=2):
    def one(bad):
        with precise_jax():  # float64, as the torch columns
            args = tuple(jnp.asarray(a) for a in m.example if np.issubdtype(a.dtype, np.floating))
            check_grads(m.jax_fn(bad), args, order=order, modes=m.modes)
    result = _compare(one, AssertionError, f"modes={m.modes}, order={order}")
    if order == 2 and result["correct"]["outcome"] == "error":  # it cannot run at order 2 here: try order 1
        again = _check_grads(m, order=1)
        why = result["correct"]["detail"][:90]
        again["note"] = f"order 2 cannot run on the correct version ({why}); {again['note']}"
        return again
    return result


def _torch_columns(torch, m):
    if torch is None or isinstance(m.torch, str):
        why = m.torch if torch else "torch is not installed (or not asked for)"
        return {t: {"verdict": "n/a" if torch else "not run", "reason": why} for t in TOOLS[2:]}
    from torch.autograd.gradcheck import GradcheckError

    def one(checker, bad):
        inputs = tuple(torch.tensor(a, requires_grad=np.issubdtype(a.dtype, np.floating)) for a in m.example)
        return None if checker(m.torch(torch, bad), inputs) else "returned False"
    return {name: _compare(partial(one, checker), GradcheckError)
            for name, checker in zip(TOOLS[2:], (torch.autograd.gradcheck, torch.autograd.gradgradcheck))}


def _import_torch(torch):
    """None: torch if it is installed; False: no torch; a module: that one."""
    if torch is not None:
        return torch or None
    try:
        import torch
    except ImportError:
        return None
    return torch


def run(log=print, torch=None, names=None, cases=CASES):
    """{"settings", "mistakes": {name: {what, note, tool: {verdict, reason, note, seconds, correct,
    mutant}}}}; `names` keeps some mistakes, `torch` as in `_import_torch`."""
    torch = _import_torch(torch)
    out = {}
    for m in MISTAKES:
        if names is not None and m.name not in names:
            continue
        row = {"what": m.what, "note": m.note, "jaxnets": _jaxnets(m, cases), "check_grads": _check_grads(m),
               **_torch_columns(torch, m)}
        if m.reference is not None:  # the convention at a kink is the user's to state: what stating it changes
            again = _jaxnets(m, cases, reference=m.reference)
            row["jaxnets"]["note"] = f"with reference= the NumPy pair: {again['verdict']} ({again['reason']})"
        out[m.name] = row
        log(f"{m.name}: " + ", ".join(f"{t} {row[t]['verdict']}" for t in TOOLS))
    settings = {"jaxnets cases": cases, "jax": jax.__version__, "torch": torch.__version__ if torch else None,
                "dtype": "float64", "defaults": "check_grads: eps 1e-4, atol = rtol = 1e-5 (float64); gradcheck: "
                                                "eps 1e-6, atol 1e-5, rtol 1e-3"}
    return {"settings": settings, "mistakes": out}


def _cell(r):
    if "correct" not in r:
        return f"{r['verdict']}: {r['reason']}"
    reason = "" if r["verdict"] == "missed" else f": {r['reason'][:110]}"
    return f"**{r['verdict']}**{reason} ({r['seconds']:.2f} s)".replace("|", "/")


def to_markdown(result):
    rows = result["mistakes"]
    lines = ["| mistake | what is wrong | " + " | ".join(HEADERS) + " |", "|" + "---|" * (2 + len(TOOLS))]
    lines += [f"| `{n}` | {r['what']} | " + " | ".join(_cell(r[t]) for t in TOOLS) + " |" for n, r in rows.items()]
    alarms, tally = [], []
    for t in TOOLS:
        ran = [r[t] for r in rows.values() if "correct" in r[t]]
        if not ran:
            alarms.append("not run")
            tally.append("not run")
            continue
        bad = [n for n, r in rows.items() if r[t]["verdict"] == "false alarm"]
        alarms.append(f"{len(bad)}/{len(ran)} false alarms" + (f" ({', '.join(bad)})" if bad else "")
                      + f" ({sum(r['correct']['seconds'] for r in ran):.1f} s)")
        tally.append(f"{sum(r['verdict'] == 'caught' for r in ran)}/{len(ran)} "
                     f"({sum(r['mutant']['seconds'] for r in ran):.1f} s)")
    lines.append("| **correct versions** | each mistake's correct rule, same inputs | " + " | ".join(alarms) + " |")
    lines.append("| **caught** | | " + " | ".join(tally) + " |")
    torch_ran = [r for r in rows.values() if "correct" in r["gradcheck"]]
    either = sum("caught" in (r["gradcheck"]["verdict"], r["gradgradcheck"]["verdict"]) for r in torch_ran)
    s = result["settings"]
    together = f" gradgradcheck checks second order only; with gradcheck, the two together catch " \
               f"{either}/{len(torch_ran)}." if torch_ran else ""
    lines += ["", f"Settings: jaxnets `check(..., cases={s['jaxnets cases']})` (no reference); jax {s['jax']}, "
                  f"torch {s['torch']}; all in {s['dtype']}; {s['defaults']}. Times: wall seconds of the mutant's "
                  f"run; the last two rows: totals over the correct versions and over the mutants.{together}",
              "", "Notes:"]
    for name, r in rows.items():
        notes = [r["note"]] + [f"{t}: {r[t]['note']}" for t in TOOLS if r[t].get("note")]
        lines.append(f"- `{name}`: " + "; ".join(n for n in notes if n))
    return "\n".join(lines) + "\n"


def readme_block(result):
    """The checker page's compact table (docs/checker.md): one word per cell, the settings line, generated."""
    rows = result["mistakes"]
    word = {"caught": "caught", "missed": "missed", "false alarm": "**false alarm**", "n/a": "n/a", "not run": "-"}
    lines = [f"Generated by `python -m experiments.tool_comparison --update-readme docs/checker.md` on "
             f"{time.strftime('%Y-%m-%d')} (jax {result['settings']['jax']}, torch {result['settings']['torch']}, "
             f"float64, each tool's default tolerances; jaxnets with `cases={result['settings']['jaxnets cases']}` "
             f"and no reference).", "",
             "| mistake | " + " | ".join(HEADERS) + " |", "|---|" + "---|" * len(TOOLS)]
    for name, r in rows.items():
        cells = []
        for t in TOOLS:
            w = word.get(r[t]["verdict"], r[t]["verdict"])
            if t == "jaxnets" and r[t]["verdict"] == "missed" and "DOMAIN" in r[t].get("reason", ""):
                w = "DOMAIN note"
            cells.append(w)
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    tally = []
    for t in TOOLS:
        ran = [r[t] for r in rows.values() if "correct" in r[t]]
        tally.append(f"{sum(r['verdict'] == 'caught' for r in ran)}/{len(ran)}, "
                     f"{sum(r['verdict'] == 'false alarm' for r in ran)} false alarms" if ran else "-")
    lines.append("| **caught, false alarms on the correct rules** | " + " | ".join(tally) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m experiments.tool_comparison", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--cases", type=int, default=CASES, help=f"jaxnets cases per check (default {CASES})")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch columns")
    parser.add_argument("--update-readme", metavar="PATH",
                        help="write the compact table into PATH between the tools markers")
    args = parser.parse_args(argv)
    # progress on stderr, so that stdout is the markdown alone
    result = run(log=lambda line: print(line, file=sys.stderr, flush=True), torch=False if args.no_torch else None,
                 cases=args.cases)
    print(to_markdown(result), end="")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.update_readme:
        from experiments import runs

        runs.replace_marked_block(args.update_readme, "tools", readme_block(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
