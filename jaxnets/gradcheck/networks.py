"""Whole-network backwards: d(cost)/d(parameters) of a network, checked as a course's
gradient-checking assignment does it, but properly — every parameter against finite
differences of the cost through the user's OWN forward and cost (deeplearning.ai's
`L_model_backward(AL, Y, caches)` with `L_model_forward` and `compute_cost`,
`backward_propagation_with_regularization(X, Y, cache, lambd)` with
`compute_cost_with_regularization`, `backward_propagation_with_dropout` with its masks held
fixed, `backward_propagation_n(X, Y, cache)` with `forward_propagation_n` returning the cost,
the one-parameter `backward_propagation(x, theta)`).

The pieces are called by their parameters' names: `X`, `Y`, `parameters`, `cache(s)`,
`lambd`, `keep_prob`, and the network's output under whatever name the function gives it
(`AL`, `A3`, `a3`). The convention lists, per backward, its forward and cost
(`Convention.networks`); a missing piece makes a row that names it. Dropout masks drawn with
`np.random` are held fixed by seeding NumPy's global generator before every call (the
forward is run again for each finite difference). The gradients come back as a dict keyed
`d<parameter>` (`dW1`, `db1`); the cost is the batch mean, so no factor is applied.
"""
from __future__ import annotations

import inspect

import numpy as np

from jaxnets.gradcheck.subject import RuleError, Subject

#: draws of the parameters (N(0, 0.7^2) weights, fixed X and Y) each network is checked on
DRAWS = 4
#: central-difference step, and the tolerance relative to the gradient's scale: a whole
#: network's cost is smooth away from its ReLU kinks, which a step this small crosses with
#: probability ~1e-5 per coordinate; a wrong rule is off by O(1)
STEP, RTOL = 1e-6, 1e-5

#: values of the hyper-parameters a network's pieces take by name
HYPER = {"lambd": 0.7, "keep_prob": 0.8}
#: the seed NumPy's global generator is reset to before every call (dropout masks held fixed)
MASK_SEED = 3


def _n(rng, *shape):
    return rng.standard_normal(shape)


def _layers(rng, dims, m=5):
    params = {}
    for l in range(1, len(dims)):
        params[f"W{l}"] = _n(rng, dims[l], dims[l - 1]) * 0.7
        params[f"b{l}"] = _n(rng, dims[l], 1) * 0.3
    return params, _n(rng, dims[0], m), (rng.random((1, m)) < 0.5).astype(np.float64)


#: candidate networks (layer sizes): the first the pieces run on is used
GEOMETRIES = ((3, 4, 2, 1), (4, 3, 1), (4, 5, 3, 1))


def _params(fn):
    return [p for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _call(fn, env):
    """fn called with the values of env its parameters name; a parameter env lacks is the
    network's output (`AL`, `A3`) when env has one, else its default."""
    args = []
    for p in _params(fn):
        if p.name in env:
            args.append(env[p.name])
        elif p.name in ("caches",) and "cache" in env:
            args.append(env["cache"])
        elif "output" in env and p.default is p.empty:
            args.append(env["output"])
        elif p.default is not p.empty:
            args.append(p.default)
        else:
            raise TypeError(f"{fn.__name__}: no value for its parameter {p.name!r}")
    np.random.seed(MASK_SEED)
    return fn(*args)


def network_subject(name, backward, forward, cost):
    """A Subject of a whole-network backward: the primal is the cost as a function of the
    parameters dict (X and Y fixed), the rule the backward's gradients."""
    def run(parameters, X, Y):
        env = {"X": X, "Y": Y, "parameters": parameters, **HYPER}
        out = _call(forward, env)
        if cost is None:  # forward_propagation_n(X, Y, parameters) -> (cost, cache)
            value, env["cache"] = out
        else:
            env["output"], env["cache"] = out
            value = _call(cost, env)
        return np.asarray(value, np.float64).reshape(()), env

    def primal(parameters, X, Y):
        return run(parameters, X, Y)[0]

    def rule(args, kwargs, cot):
        parameters = args[0]
        value, env = run(*args)
        grads = _call(backward, env)
        if not isinstance(grads, dict):
            raise RuleError(f"{name} returned {type(grads).__name__}, expected a dict of gradients keyed d<parameter>")
        missing = [k for k in parameters if "d" + k not in grads]
        if missing:
            raise RuleError(f"{name}'s gradients have no {', '.join('d' + k for k in missing)}")
        return value, ({k: cot * np.asarray(grads["d" + k], np.float64) for k in parameters},)

    subject = Subject(name, "loss", primal, rule, wrt=(0,), arg_names=("parameters", "X", "Y"),
                      output_names=("cost",), rule_label=name, primal_key=("network", forward, cost))
    subject.jax_rule = False
    subject.notes["network"] = (f"the cost {'returned by ' + forward.__name__ if cost is None else cost.__name__} "
                                f"through {forward.__name__}, as a function of every parameter; "
                                f"{', '.join(f'{k}={v}' for k, v in HYPER.items())}; NumPy's global seed reset "
                                f"before every call, so dropout masks are held fixed")
    return subject


def examples(subject, seed=0):
    """([(parameters, X, Y)], None): the first geometry the pieces run on (forward, cost,
    backward); ([], the first error) when none does."""
    rng = np.random.default_rng([seed, 27])
    first = None
    for dims in GEOMETRIES:
        ex = _layers(rng, dims)
        try:
            subject.rule(ex, {}, 1.0)
            return [ex], None
        except Exception as exc:
            first = first or exc
    return [], first


def judge(subject, examples, seed=0):
    """(status, worst relative error, note) of a whole-network backward: every parameter's
    gradient against central differences of the user's own cost on DRAWS draws of the
    parameters (the geometry of `examples[0]`), with a hint per parameter that disagrees
    (a constant factor: a missing 1/m, a doubled term)."""
    parameters0, X, Y = examples[0]
    rng = np.random.default_rng([seed, 2727])
    worst, bad = 0.0, {}
    for d in range(DRAWS):
        params = parameters0 if d == 0 else {k: rng.standard_normal(np.shape(v)) * 0.7 for k, v in parameters0.items()}
        _, (grads,) = subject.rule((params, X, Y), {}, 1.0)
        scale = max(max(float(np.max(np.abs(g))) for g in grads.values()), 1e-12)
        for k, g in grads.items():
            fd = np.zeros(np.shape(params[k]))
            for idx in np.ndindex(*np.shape(params[k])):
                hi, lo = dict(params), dict(params)
                hi[k], lo[k] = params[k].copy(), params[k].copy()
                hi[k][idx] += STEP
                lo[k][idx] -= STEP
                fd[idx] = (subject.primal(hi, X, Y) - subject.primal(lo, X, Y)) / (2 * STEP)
            g = np.asarray(g, np.float64).reshape(np.shape(fd))
            err = float(np.max(np.abs(g - fd))) / scale
            worst = max(worst, err)
            if err > RTOL:
                ratio = np.sum(g * fd) / max(np.sum(fd * fd), 1e-300)
                factor = f"off by a factor {ratio:.4g}" if np.allclose(g, ratio * fd, rtol=1e-4, atol=1e-6 * scale) \
                    and abs(ratio) > 1e-6 else "not a multiple of the true gradient"
                bad.setdefault(k, f"d{k}: {factor} (worst at {tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(g - fd)), fd.shape))})")
    if bad:
        return "fail", worst, "; ".join(bad.values())
    return "pass", worst, f"every parameter ({', '.join(parameters0)}) on {DRAWS} draws"


def scalar_subject(name, forward, backward, wrt_name):
    """The one-parameter case of the gradient-checking assignment: `forward(x, theta) -> J`
    and `backward(x, theta) -> dtheta`."""
    names = [p.name for p in _params(forward)]
    at = names.index(wrt_name)

    def primal(*args):
        return np.asarray(forward(*args), np.float64)

    def rule(args, kwargs, cot):
        grads = [None] * len(args)
        grads[at] = cot * np.asarray(backward(*args), np.float64)
        return primal(*args), (grads[at],)

    return Subject(name, "loss", primal, rule, wrt=(at,), arg_names=tuple(names), output_names=("J",),
                   rule_label=name, primal_key=("scalar", forward))
