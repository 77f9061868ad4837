"""The NumPy float64 interpreter of a network's stage list: the twin of
`jaxnets.models.stages`, reading the same table (`netspec.stages`) and calling this
package's pairs by the kinds' names. A stage's forward is called
`forward(*inputs, *constants, *params, *args, **options)` (no backend context: NumPy has one
conv form), its backward's results are split as the kind's `grads` says, and a parameter's
gradient is summed over the stages that use it.

`run(stages, params, x, train, state, noise)` -> (scores, tape, batch statistics);
`backward(stages, params, tape, dscores)` -> grads.
Constants: "initial_state" is zeros (N, H); "randomness" is the next array of `noise` (the
uniform draws `jaxnets.models.Model.noise` gives, so the masks are the very same).
Batch statistics: the input's mean and biased variance over every axis but the feature /
channel axis 1, computed here from the input (not read from the pair's cache).
"""
import numpy as np

from reference_numpy import layers
from netspec.stages import state_names


def _params(s, params):
    values = []
    for role, name in zip(s.decl.params, s.params):
        if name in params:
            values.append(params[name])
        elif role in s.decl.optional:  # no bias before batch norm
            w = values[0]
            values.append(np.zeros(w.shape[0] if w.ndim == 4 else w.shape[-1]))
        else:
            raise KeyError(f"stage {s.kind} {s.index}: parameter {name!r} missing")
    return values


def _constants(s, inputs, values, draws):
    out = []
    for c in s.decl.constants:
        if c == "randomness":
            out.append(next(draws))
        else:  # "initial_state"
            out.append(np.zeros((inputs[0].shape[0], values[s.decl.params.index(s.decl.state_from)].shape[0])))
    return out


def _start(x):
    """The stream a network starts from: x, or the values of a tuple x (the last on top)."""
    return list(x) if isinstance(x, tuple) else [x]


def _pop(stream, n):
    taken = stream[len(stream) - n:]
    del stream[len(stream) - n:]
    return taken


def run(stages, params, x, train=True, state=None, noise=None):
    """(scores, tape, batch statistics) of the stages: training mode with the dropout draws
    `noise`, or inference with the running statistics `state` (train_only stages skipped)."""
    stream, caches, outputs, stats, draws = _start(x), [], [], {}, iter(noise or ())
    for s in stages:
        d = s.decl
        if d.train_only and not train:
            caches.append(None)
            outputs.append(None)
            continue
        inputs = _pop(stream, d.inputs)
        values = _params(s, params)
        if d.statistics and not train:
            mean, var = (state[k] for k in state_names(s))
            stream.append(getattr(layers, f"{d.pair}_inference")(*inputs, *values, mean, var, **dict(s.options)))
            caches.append(None)
            outputs.append(None)
            continue
        if d.statistics:
            axes = tuple(a for a in range(inputs[0].ndim) if a != 1)
            for k, v in zip(state_names(s), (inputs[0].mean(axis=axes), inputs[0].var(axis=axes))):
                stats[k] = v
        res = getattr(layers, f"{d.pair}_forward")(*inputs, *_constants(s, inputs, values, draws), *values,
                                                    *s.args, **dict(s.options))
        outs = res[:-1]
        stream.extend(outs)
        caches.append(res[-1])
        outputs.append(outs)
    return stream[-1], (caches, outputs, len(stream)), stats


def backward(stages, params, tape, dscores):
    """Every parameter's gradient from dL/dscores, the backwards in reverse (training tape)."""
    caches, outputs, depth = tape
    dstream, grads = [None] * (depth - 1) + [dscores], {}
    for s, cache, outs in zip(reversed(stages), reversed(caches), reversed(outputs)):
        d = s.decl
        douts = [np.zeros_like(o) if g is None else g for g, o in zip(_pop(dstream, d.outputs), outs)]
        back = getattr(layers, f"{d.pair}_backward")(*douts, cache)
        back = iter(back if isinstance(back, tuple) else (back,))
        dinputs = [next(back) for _ in range(d.inputs)] if "inputs" in d.grads else [None] * d.inputs
        if "constants" in d.grads:
            for _ in d.constants:
                next(back)
        for name, g in zip(s.params, back):
            if name in params:
                grads[name] = grads[name] + g if name in grads else g
        dstream.extend(dinputs)
    return grads
