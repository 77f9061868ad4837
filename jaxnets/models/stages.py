"""Networks written as a short list of stages (`netspec.stages`: every stage kind declared
once, in the table the NumPy twin reads too), run three ways from the same list:

- `forward(...)` with a set of single-output layers (`ops.AUTODIFF` or `ops.CUSTOM_VJP`):
  the scores jax.grad differentiates through, in training mode (batch statistics, dropout) or
  inference mode (running statistics, no dropout);
- `manual_forward(...)` then `manual_backward(...)`: the hand-written pairs forward with
  their caches kept, and every backward in reverse from the loss's gradient (the "manual"
  mode); a model puts its own loss between the two;
- both return the batch statistics of every `statistics` stage, from which the model's running
  averages are updated (`update_state`), functionally.

The interpreter knows no kind by name: the table says which op a stage calls, with which
arguments, what its backward returns and what it keeps as state. Conv stages take the layout
they are given (`layers.layout` in `forward`, `layout` in `manual_forward`).

Parameters follow cs231n's names (`netspec.stages.stage`): W1, b1, ... per affine or conv
stage, gamma1, beta1 for the norm after stage 1, and the state running_mean1, running_var1.
A stage followed by batch norm has no bias: batch norm subtracts the batch mean, so such a
bias would not change the output and its gradient is exactly 0 (beta takes its place).
Dropout stage j draws its mask from `fold_in(key, j)` (`dropout_noise`), so the NumPy twin
can be given the very same draws.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnets import ops
from jaxnets.models.base import add_l2_penalty
from jaxnets.ops import AUTODIFF, batch_moments, dropout_noise, running_average, softmax_loss
from netspec.stages import state_names


def init_state(stages, widths):
    """Running mean 0 and variance 1 per feature of every `statistics` stage (cs231n's start);
    `widths[index]` is the number of features (or channels) of stage `index`. NumPy float32
    arrays (made on the host: nothing is compiled per width)."""
    state = {}
    for s in stages:
        if s.decl.statistics:
            mean, var = state_names(s)
            state[mean], state[var] = np.zeros(widths[s.index], np.float32), np.ones(widths[s.index], np.float32)
    return state


def update_state(state, stats, momentum):
    """New running statistics: running_average of each with this batch's (stats has the same
    keys as state: the batch mean and biased variance of every batch-norm stage)."""
    return {k: running_average(state[k], jax.lax.stop_gradient(stats[k]).astype(state[k].dtype), momentum)
            for k in state}


def _params(s, params):
    """The stage's parameter values in argument order; an absent optional one (a bias before
    batch norm) as zeros of the first parameter's output width."""
    values = []
    for role, name in zip(s.decl.params, s.params):
        if name in params:
            values.append(params[name])
        elif role in s.decl.optional:
            w = values[0]
            values.append(jnp.zeros(w.shape[0] if w.ndim == 4 else w.shape[-1], w.dtype))
        else:
            raise KeyError(f"stage {s.kind} {s.index}: parameter {name!r} missing")
    return values


def _constants(s, inputs, values, key):
    """The non-differentiated arrays the stage's forward takes after its inputs."""
    out = []
    for c in s.decl.constants:
        if c == "randomness":
            out.append(jax.random.fold_in(key, s.index))
        else:  # "initial_state": zeros (N, H) made from x, so that they vary along a mesh axis where
            # x does (a scan under shard_map, e.g. data-parallel accuracy counts, needs carries of one kind)
            x, w = inputs[0], values[s.decl.params.index(s.decl.state_from)]
            zero = jnp.zeros_like(x[:, 0, :1], dtype=jnp.result_type(x, w))  # the dtype h will have
            out.append(jnp.broadcast_to(zero, (x.shape[0], w.shape[0])))
    return out


def _context(s, layout):
    return [layout for c in s.decl.context if c == "layout"]


def _start(x):
    """The stream a network starts from: x, or the values of a tuple x (the last on top)."""
    return list(x) if isinstance(x, tuple) else [x]


def _pop(stream, n):
    taken = stream[len(stream) - n:]
    del stream[len(stream) - n:]
    return taken


def forward(stages, params, x, layers=AUTODIFF, *, train=True, state=None, key=None):
    """(scores, batch statistics) of the stages; train: batch statistics and dropout (with
    `key`), else running statistics from `state` and no dropout. `layers`' functions are
    called by the kinds' `pair` names."""
    stream, stats = _start(x), {}
    for s in stages:
        d = s.decl
        if d.train_only and not train:
            continue
        inputs = _pop(stream, d.inputs)
        values = _params(s, params)
        if d.statistics and not train:
            if state is None:
                raise ValueError("this model has batch-norm running statistics: pass state= (the trained "
                                 "model's, e.g. TrainResult.model_state, or model.init_state() for a new one)")
            mean, var = (state[k] for k in state_names(s))
            stream.append(getattr(ops, f"{d.pair}_inference")(*inputs, *values, mean, var, **dict(s.options)))
            continue
        if d.statistics:
            for k, v in zip(state_names(s), batch_moments(jax.lax.stop_gradient(inputs[0]))):
                stats[k] = v
        out = getattr(layers, d.pair)(*inputs, *_constants(s, inputs, values, key), *values, *s.args,
                                      *_context(s, layers.layout), *(v for _, v in s.options))
        stream.extend(out if d.outputs > 1 else (out,))
    return stream[-1], stats


class Tape(NamedTuple):
    """What `manual_forward` keeps for `manual_backward`: per stage its cache and outputs (the
    outputs give the zero gradient of a value no later stage read), and the values left on
    the stream (the scores are the last)."""

    caches: tuple
    outputs: tuple
    stream: tuple


def manual_forward(stages, params, x, key=None, layout=None):
    """(scores, tape, batch statistics): the hand-written forward pairs in training mode."""
    stream, caches, outputs, stats = _start(x), [], [], {}
    for s in stages:
        d = s.decl
        inputs = _pop(stream, d.inputs)
        values = _params(s, params)
        res = getattr(ops, f"{d.pair}_forward")(*inputs, *_constants(s, inputs, values, key), *values, *s.args,
                                                 *_context(s, layout), **dict(s.options))
        outs, cache = res[:-1], res[-1]
        if d.statistics:
            for k, v in zip(state_names(s), (cache.mean, cache.var)):
                stats[k] = v
        stream.extend(outs)
        caches.append(cache)
        outputs.append(outs)
    return stream[-1], Tape(tuple(caches), tuple(outputs), tuple(stream)), stats


def manual_backward(stages, params, tape, dscores):
    """The gradient of every parameter from dL/dscores: each stage's backward in reverse; a
    parameter used by several stages gets the sum; a value no stage read gets zeros."""
    dstream, grads = [None] * (len(tape.stream) - 1) + [dscores], {}
    for s, cache, outs in zip(reversed(stages), reversed(tape.caches), reversed(tape.outputs)):
        d = s.decl
        douts = [jnp.zeros_like(o) if g is None else g for g, o in zip(_pop(dstream, d.outputs), outs)]
        back = getattr(ops, f"{d.pair}_backward")(*douts, cache)
        back = iter(back if isinstance(back, tuple) else (back,))
        dinputs = [next(back) for _ in range(d.inputs)] if "inputs" in d.grads else [None] * d.inputs
        if "constants" in d.grads:
            for _ in d.constants:  # h0 is the constant 0: its gradient is dropped
                next(back)
        for name, g in zip(s.params, back):
            if name in params:  # an absent optional parameter's gradient is not reported
                grads[name] = grads[name] + g if name in grads else g
        dstream.extend(dinputs)
    return grads


def manual_loss_and_grads(stages, params, x, y, reg, key=None, layout=None):
    """(loss, grads, batch statistics): the hand-written forward pairs, softmax loss, and
    every backward in reverse (cs231n FullyConnectedNet.loss / ConvNet.loss), plus 002's L2
    on every W; conv stages in `layout`'s forms."""
    scores, tape, stats = manual_forward(stages, params, x, key, layout)
    value, dscores = softmax_loss(scores, y)
    grads = manual_backward(stages, params, tape, dscores)
    value, grads = add_l2_penalty(value, grads, params, reg, weight_names(params))
    return value, grads, stats


def weight_names(params):
    """The weight matrices and filters, W1, W2, ...: what the L2 penalty covers (not biases,
    gammas or betas)."""
    return tuple(sorted(k for k in params if k.startswith("W")))


def l2_value(value, params, reg, layers):
    """The loss plus 002's 0.5 reg |W|^2 for every weight, through `layers` (autodiff or
    custom_vjp mode)."""
    for k in weight_names(params) if reg else ():
        value = value + layers.l2_penalty(params[k], reg)
    return value


def noise(stages, key, shapes):
    """The uniform draws each randomness-taking stage takes from `key` (`dropout_noise(fold_in(
    key, j), shape)`), in stage order, for inputs of `shapes[j]`: what the NumPy twin is given."""
    return tuple(dropout_noise(jax.random.fold_in(key, s.index), shapes[s.index])
                 for s in stages if "randomness" in s.decl.constants)


def predict_fn(stages):
    def predict(params, x, state=None):
        return jnp.argmax(forward(stages, params, x, train=False, state=state)[0], axis=1)

    return predict
