"""What three gradient checkers catch on the same planted mistakes, side by side.

Tools: `jaxnets.verify.check` (it generates its own cases from the example), JAX's
`jax.test_util.check_grads(order=2)` and torch's `gradcheck` / `gradgradcheck`, each with its
default tolerances, in float64, on one random normal example of the layer's usual shape —
what a user would hand each of them. The mistakes are the project's planted mutants
(`mutants.MUTANTS`, `mutants_custom.CUSTOM_MUTANTS`); each is run beside its correct version,
which must pass in every tool (otherwise the tool's "catch" means nothing: a false alarm).

How each tool is fed: jaxnets gets the code as a user wrote it (a cs231n pair through
`backward=`, a loss returning (loss, dscores), a custom_vjp / custom_jvp object). check_grads
needs a JAX function: a pair is wired as a custom_vjp by `jaxnets.ops.vjp.manual_vjp`, a
loss by `loss_vjp`; a custom_vjp cannot be jvp'd, so it runs with modes=("rev",). torch gets
a `torch.autograd.Function` port of the same rule; its backward recomputes what it needs
from saved tensors with differentiable torch ops (torch's idiom, so gradgradcheck can run).

    python -m experiments.tool_comparison [--json PATH] [--cases N] [--no-torch] > table.md
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

from jaxnets import ops
from jaxnets.ops.vjp import loss_vjp, manual_vjp
from jaxnets.verify import CheckInputError, check, precise_jax
from jaxnets.verify.mutants import MUTANTS, loss_vjp_ignoring_cotangent
from jaxnets.verify.mutants_custom import CUSTOM_MUTANTS, cos_update
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
    example: tuple  # NumPy arrays: one valid call (int arrays are labels, never differentiated)
    jaxnets: Callable  # (bad, cases) -> Report
    jax_fn: Callable  # bad -> the JAX function check_grads differentiates w.r.t. its float arguments
    modes: tuple
    torch: Callable | str  # (torch, bad) -> a function of torch tensors; or why there is no port
    note: str = ""
    reference: tuple | None = None  # a trusted pair: jaxnets is also run with reference= (a second opinion)


# ----------------------------------------------------------------------------- the JAX side

def _pair(name, forward, backward, example, static=None, torch=None, reference=None):
    """A catalogue mutant of a (forward, backward) pair."""
    bwd = lambda bad: _M[name].fn if bad else backward  # noqa: E731
    static = static or {}

    def jax_fn(bad):  # statics are nondiff arguments of the custom_vjp, bound here
        n = len(example)
        f = manual_vjp(forward, bwd(bad), nondiff_argnums=tuple(range(n, n + len(static))))
        return lambda *a: f(*a, *static.values())

    return Mistake(name, _M[name].description, example,
                   lambda bad, cases, **kw: check(forward, *example, backward=bwd(bad), kwargs=static, cases=cases,
                                                  **kw),
                   jax_fn, ("rev",), torch, "check_grads: the pair wired as a custom_vjp by manual_vjp", reference)


def _loss(name, pair_of, torch, extra=""):
    """A loss mutant; `pair_of(bad)` -> the (loss, dscores) function, or a custom_vjp object."""
    def jax_fn(bad):
        f = pair_of(bad)
        f = f if isinstance(f, jax.custom_vjp) else loss_vjp(f)
        return lambda s: f(s, _LABELS)

    note = "jaxnets: the custom_vjp object" if name == "loss_vjp_ignores_cotangent" else \
        "jaxnets: the (loss, dscores) function; check_grads: wired as a custom_vjp by loss_vjp"
    return Mistake(name, _M[name].description, (_SCORES, _LABELS),
                   lambda bad, cases: check(pair_of(bad), _SCORES, _LABELS, cases=cases), jax_fn, ("rev",), torch,
                   note + extra)


def _custom(name, torch, modes, bind=None, note=""):
    """A mutant of mutants_custom: a custom_vjp / custom_jvp object and its own example."""
    m = _C[name]
    obj = lambda bad: m.mutant if bad else m.correct  # noqa: E731
    example = m.example if bind is None else m.example[1:]
    return Mistake(name, m.description, tuple(np.asarray(a) for a in example),
                   lambda bad, cases: check(obj(bad), *m.example, cases=cases),
                   lambda bad: obj(bad) if bind is None else bind(obj(bad)), modes, torch, note)


# ----------------------------------------------------------------------------- the torch ports

def _function(torch, forward, backward, detach_out=False):
    """A torch.autograd.Function: `forward(*inputs)`, `backward(g, out, *inputs)`. The output is
    saved as an output (so double backward sees it depend on the inputs) unless detach_out:
    torch's twin of JAX's `stop_gradient` residual."""
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
    """(torch, bad) -> the port of an elementwise rule; rules are `rule(torch, g, out, x)`."""
    return lambda t, bad: _function(t, lambda x: forward(t, x), lambda g, y, x: (wrong_rule if bad else rule)(t, g, y, x),
                                    detach_out and bad)


_TANH = (lambda t, x: t.tanh(x), lambda t, g, y, x: g * (1 - y * y))
_RELU = (lambda t, x: t.where(x > 0, x, 0.0), lambda t, g, y, x: g * (x > 0))


def _windows(x):  # (N, C, H, W) -> (N, C, H/2, W/2, 4): the 2x2 stride-2 windows
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)


def _max_pool(torch, bad):
    def backward(g, out, x):
        win = _windows(x)
        first = torch.nn.functional.one_hot(win.argmax(-1), 4).double()  # torch's argmax: the first maximum
        mask = (win == out[..., None]).double() if bad else first
        n, c, h, w = x.shape
        return (mask * g[..., None]).reshape(n, c, h // 2, w // 2, 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(x.shape)
    return _function(torch, lambda x: _windows(x).amax(-1), backward)


def _conv(torch, bad):
    nn = torch.nn

    def backward(g, out, x, w, b):  # pad 1, stride 1; the mistake keeps the padded (H + 2, W + 2) dx
        dx = nn.functional.conv_transpose2d(g, w, padding=0 if bad else 1)
        return dx, nn.grad.conv2d_weight(x, w.shape, g, padding=1), g.sum((0, 2, 3))
    return _function(torch, lambda x, w, b: nn.functional.conv2d(x, w, b, padding=1), backward)


def _batchnorm(torch, bad):
    def xhat(x):
        mean, var = x.mean(0), x.var(0, unbiased=False)
        return (x - mean) / torch.sqrt(var + 1e-5), 1 / torch.sqrt(var + 1e-5)

    def backward(g, out, x, gamma, beta):
        xh, inv_std = xhat(x)
        dxh, m = g * gamma, x.shape[0]
        along = 0 if bad else xh * (dxh * xh).sum(0)  # the variance's share
        return inv_std / m * (m * dxh - dxh.sum(0) - along), (g * xh).sum(0), g.sum(0)
    return _function(torch, lambda x, gamma, beta: gamma * xhat(x)[0] + beta, backward)


def _softmax(torch, bad, wrong):
    def probs(s):
        if bad and wrong == "unstable":
            e = torch.exp(s)
            return e / e.sum(1, keepdim=True)
        return torch.softmax(s, 1)

    def forward(s, y):
        return -torch.log(probs(s))[torch.arange(len(y)), y].mean()

    def backward(g, out, s, y):
        d = probs(s) - torch.nn.functional.one_hot(y, s.shape[1]).double()
        d = d if bad and wrong == "sum" else d / len(y)
        return (d if bad and wrong == "ignore g" else g * d), None
    return _function(torch, forward, backward)


def _fixed_point(torch, bad):
    def iterate(step, x0, tol):  # the JAX tutorial's loop: stop when an update moves less than tol
        prev, x = x0, step(x0)
        while float(torch.abs(prev - x).detach()) > tol:
            prev, x = x, step(x)
        return x

    def backward(g, x_star, a, x0):  # w = g + f_x w, solved by iteration; da = w, dx0 = 0
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
          lambda t, bad: _softmax(t, bad, "unstable"), "; only scores large enough to overflow exp show it "
          "(tests/test_mutants.py catches it on the catalogue's stress cases)"),
    _loss("softmax_missing_1_over_n", lambda bad: _M["softmax_missing_1_over_n"].fn if bad else ops.softmax_loss,
          lambda t, bad: _softmax(t, bad, "sum")),
    _loss("loss_vjp_ignores_cotangent",
          lambda bad: (loss_vjp_ignoring_cotangent if bad else loss_vjp)(ops.softmax_loss),
          lambda t, bad: _softmax(t, bad, "ignore g")),
    _custom("custom_vjp_stop_gradient_residual", _elementwise(*_TANH, _TANH[1], detach_out=True), ("rev",),
            note="torch: the saved output detached"),
    _custom("fixed_point_backward_not_converged", _fixed_point, ("rev",),
            bind=lambda f: lambda a, x0: f(cos_update, a, x0), note="f = cos_update is a nondiff argument"),
    _custom("custom_jvp_wrong_at_kink", _elementwise(*_RELU, lambda t, g, y, x: t.where(x == 0, 2 * g, g * (x > 0))),
            ("fwd", "rev"),
            note="torch: a backward with the same 2g at 0"),
    _custom("custom_jvp_nan_at_boundary", _elementwise(lambda t, x: x * t.sqrt(x), lambda t, g, y, x: 1.5 * t.sqrt(x) * g,
                                                       lambda t, g, y, x: 1.5 * x / t.sqrt(x) * g), ("fwd", "rev"), note="example |x| + 0.1, as in mutants_custom"),
    _custom("custom_vjp_bwd_returns_bare_array",
            "torch accepts a bare tensor from backward for one input: the mistake does not exist there", ("rev",)),
)


# ----------------------------------------------------------------------------- running the tools

def _short(exc):
    """One line from an exception: its type, what disagreed and by how much."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    head = [ln for ln in lines if not ln.startswith(("Not equal to tolerance", "Mismatched"))][:1]
    key = [ln.replace(" among violations", "") for ln in lines if ln.startswith("Max relative")][:1]
    return f"{type(exc).__name__}: " + "; ".join(head + key)[:150]


def _outcome(thunk, mismatch):
    """("pass" | "fail" | "error", detail, seconds) of one tool on one version."""
    start = time.perf_counter()
    try:
        detail = thunk()
        kind = "pass" if detail is None else "fail"
    except mismatch as exc:
        kind, detail = "fail", _short(exc)
    except Exception as exc:  # any other exception is a refusal: for the mutant, a catch
        kind, detail = "error", _short(exc)
    return {"outcome": kind, "detail": detail or "", "seconds": round(time.perf_counter() - start, 2)}


def _verdict(good, bad, note=""):
    if good["outcome"] != "pass":
        verdict, reason = "false alarm", f"the correct version: {good['detail']}"
    elif bad["outcome"] == "pass":
        verdict, reason = "missed", "passes"
    else:
        verdict, reason = "caught", ("raised " if bad["outcome"] == "error" else "") + bad["detail"]
    return {"verdict": verdict, "reason": reason, "note": note, "seconds": bad["seconds"],
            "correct": good, "mutant": bad}


def _jaxnets(m, cases, **kw):
    def thunk(bad):
        def go():
            report = m.jaxnets(bad, cases, **kw)
            failing = [k for k, r in report.rows.items() if r.status == "fail"]
            return f"{len(failing)} rows fail: " + ", ".join(failing) if failing else None
        return go
    return _verdict(*(_outcome(thunk(bad), CheckInputError) for bad in (False, True)))


def _check_grads(m, order=2):
    def thunk(bad):
        def go():
            with precise_jax():  # float64, as the torch column
                args = tuple(jnp.asarray(a) for a in m.example if np.issubdtype(np.asarray(a).dtype, np.floating))
                check_grads(m.jax_fn(bad), args, order=order, modes=m.modes)
        return go
    good = _outcome(thunk(False), AssertionError)
    modes = f"modes={m.modes}" + ("" if order == 2 else f", order={order}")
    if good["outcome"] == "error" and order == 2:  # the tool cannot run here at order 2: try order 1
        result = _check_grads(m, order=1)
        result["note"] = f"order 2 cannot run on the correct version ({good['detail'][:90]}); {result['note']}"
        return result
    return _verdict(good, _outcome(thunk(True), AssertionError), modes)


def _torch_columns(torch, m):
    if isinstance(m.torch, str):
        return {t: {"verdict": "n/a", "reason": m.torch} for t in ("gradcheck", "gradgradcheck")}
    from torch.autograd.gradcheck import GradcheckError

    def inputs():
        return tuple(torch.tensor(a, dtype=torch.float64, requires_grad=True) if np.issubdtype(a.dtype, np.floating)
                     else torch.tensor(a) for a in map(np.asarray, m.example))

    def thunk(checker, bad):
        return lambda: None if checker(m.torch(torch, bad), inputs()) else "returned False"
    return {name: _verdict(*(_outcome(thunk(checker, bad), GradcheckError) for bad in (False, True)))
            for name, checker in (("gradcheck", torch.autograd.gradcheck),
                                  ("gradgradcheck", torch.autograd.gradgradcheck))}


def _import_torch(torch):
    """None: torch if it is installed; True: torch (ImportError without it); False: no torch."""
    if torch is None or torch is True:
        try:
            import torch as module
        except ImportError:
            if torch:
                raise
            return None
        return module
    return torch or None


def run(log=print, torch=None, names=None, cases=CASES):
    """{"settings": ..., "mistakes": {name: {tool: {verdict, reason, seconds, correct, mutant}}}}."""
    torch = _import_torch(torch)
    out = {}
    for m in MISTAKES:
        if names is not None and m.name not in names:
            continue
        row = {"what": m.what, "note": m.note, "jaxnets": _jaxnets(m, cases), "check_grads": _check_grads(m)}
        if m.reference is not None:  # the convention at a kink is the user's to state: what stating it changes
            again = _jaxnets(m, cases, reference=m.reference)
            row["jaxnets"]["note"] = f"with reference= the NumPy pair: {again['verdict']} ({again['reason']})"
        row.update(_torch_columns(torch, m) if torch else
                   {t: {"verdict": "not run", "reason": "torch is not installed"} for t in ("gradcheck", "gradgradcheck")})
        out[m.name] = row
        log(f"{m.name}: " + ", ".join(f"{t} {row[t]['verdict']}" for t in TOOLS))
    settings = {"jaxnets cases": cases, "jax": jax.__version__, "torch": torch.__version__ if torch else None,
                "dtype": "float64", "defaults": "check_grads: eps 1e-4, atol = rtol = 1e-5 (float64); gradcheck: "
                                                "eps 1e-6, atol 1e-5, rtol 1e-3"}
    return {"settings": settings, "mistakes": out}


def _cell(r):
    if r["verdict"] in ("n/a", "not run"):
        return f"{r['verdict']}: {r['reason']}"
    reason = "" if r["verdict"] == "missed" else f": {r['reason'][:110]}"
    return f"**{r['verdict']}**{reason} ({r['seconds']:.2f} s)"


def to_markdown(result):
    rows = result["mistakes"]
    lines = ["| mistake | what is wrong | " + " | ".join(HEADERS) + " |", "|" + "---|" * (2 + len(TOOLS))]
    for name, r in rows.items():
        lines.append(f"| `{name}` | {r['what']} | " + " | ".join(_cell(r[t]).replace("|", "/") for t in TOOLS) + " |")
    tally, alarms = [], []
    for t in TOOLS:
        ran = [n for n, r in rows.items() if "correct" in r[t]]
        bad = [n for n in ran if rows[n][t]["verdict"] == "false alarm"]
        secs = sum(rows[n][t]["correct"]["seconds"] for n in ran)
        alarms.append(f"{len(bad)}/{len(ran)} false alarms" + (f" ({', '.join(bad)})" if bad else "") + f" ({secs:.1f} s)")
        secs = sum(rows[n][t]["mutant"]["seconds"] for n in ran)
        tally.append(f"{sum(rows[n][t]['verdict'] == 'caught' for n in ran)}/{len(ran)} ({secs:.1f} s)")
    lines.append("| **correct versions** | each mistake's correct rule, same inputs | " + " | ".join(alarms) + " |")
    lines.append("| **caught** | | " + " | ".join(tally) + " |")
    torch_ran = [r for r in rows.values() if "correct" in r["gradcheck"]]
    either = sum("caught" in (r["gradcheck"]["verdict"], r["gradgradcheck"]["verdict"]) for r in torch_ran)
    s = result["settings"]
    lines += ["", f"Settings: jaxnets `check(..., cases={s['jaxnets cases']})` (no reference); jax {s['jax']}, "
                  f"torch {s['torch']}; all in {s['dtype']}; {s['defaults']}. Times: wall seconds of the mutant's "
                  "run; the last two rows: totals over the correct versions and over the mutants. gradgradcheck checks second order only; run "
                  f"with gradcheck, the two together catch {either}/{len(torch_ran)}.", "", "Notes:"]
    for name, r in rows.items():
        notes = [r["note"]] + [f"{t}: {r[t]['note']}" for t in TOOLS if r[t].get("note")]
        lines.append(f"- `{name}`: " + "; ".join(n for n in notes if n))
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m experiments.tool_comparison", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--cases", type=int, default=CASES, help=f"jaxnets cases per check (default {CASES})")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch columns")
    args = parser.parse_args(argv)
    # progress on stderr, so stdout is the markdown alone
    result = run(log=lambda line: print(line, file=sys.stderr, flush=True), torch=False if args.no_torch else None,
                 cases=args.cases)
    print(to_markdown(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
