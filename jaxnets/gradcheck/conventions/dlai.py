"""deeplearning.ai's convention: the "Step by Step" assignments of the Deep Learning
Specialization (course 1 week 4, course 4 week 1, course 5 week 1), by name.

Column layout: activations are (units, m) with the batch on the LAST axis, biases (units, 1);
images are (m, n_H, n_W, n_C) with filters (f, f, n_C_prev, n_C) and biases (1, 1, 1, n_C).
Forwards return `(*outputs, cache)` — `relu(Z) -> (A, Z)` has no `_forward` suffix — and a
backward may take the forward's options after its cache (`linear_activation_backward(dA,
cache, activation)`, `pool_backward(dA, cache, mode)`). The RNN cells take a `parameters`
dict and return a `gradients` dict keyed `d<name>` (`dxt`, `da_prev`, `dWax`); their extra
outputs (`yt_pred`) get no upstream gradient. Hyper-parameters come as `hparameters`.

Documented convention: `linear_backward` (and so `linear_activation_backward`) returns dW and
db of the batch-MEAN cost (the 1/m of J = 1/m sum L) but dA_prev of the per-example loss; the
check compares m * dW and m * db and says so in the row. A rule off by any other factor fails.
"""
from __future__ import annotations

import numpy as np

from jaxnets.gradcheck.conventions import Convention, Known
from reference_numpy import layers as npl

ACTIVATIONS = ("relu", "sigmoid")


def _n(rng, *shape):
    return rng.standard_normal(shape)


# --------------------------------------------------------------------------- twins (column layout)

def _linear_forward(A, W, b):
    out, cache = npl.affine_forward(A.T, W.T, b.reshape(-1))
    return out.T, (cache, np.shape(b))


def _linear_backward(dZ, cache):
    cache, b_shape = cache
    dx, dw, db = npl.affine_backward(dZ.T, cache)
    return dx.T, dw.T, db.reshape(b_shape)


_ACT = {"relu": (npl.relu_forward, npl.relu_backward), "sigmoid": (npl.sigmoid_forward, npl.sigmoid_backward)}


def _linear_activation_forward(A_prev, W, b, activation):
    Z, lin = _linear_forward(A_prev, W, b)
    A, act = _ACT[activation][0](Z)
    return A, (lin, act)


def _linear_activation_backward(dA, cache, activation):
    lin, act = cache
    return _linear_backward(_ACT[activation][1](dA, act), lin)


def _conv_forward(A_prev, W, b, hparameters):
    out, cache = npl.conv_forward(A_prev.transpose(0, 3, 1, 2), W.transpose(3, 2, 0, 1), b.reshape(-1),
                                  hparameters["stride"], hparameters["pad"])
    return out.transpose(0, 2, 3, 1), (cache, np.shape(b))


def _conv_backward(dZ, cache):
    cache, b_shape = cache
    dx, dw, db = npl.conv_backward(dZ.transpose(0, 3, 1, 2), cache)
    return dx.transpose(0, 2, 3, 1), dw.transpose(2, 3, 1, 0), db.reshape(b_shape)


def _pool_forward(A_prev, hparameters, mode="max"):
    f, s = hparameters["f"], hparameters["stride"]
    fwd = npl.max_pool_forward if mode == "max" else npl.avg_pool_forward
    out, cache = fwd(A_prev.transpose(0, 3, 1, 2), f, f, s)
    return out.transpose(0, 2, 3, 1), cache


def _pool_backward(dA, cache, mode="max"):
    bwd = npl.max_pool_backward if mode == "max" else npl.avg_pool_backward
    return bwd(dA.transpose(0, 3, 1, 2), cache).transpose(0, 2, 3, 1)


# --------------------------------------------------------------------------- geometries

def _rnn_params(r, n_x=3, n_a=5, n_y=2):
    return {"Waa": _n(r, n_a, n_a), "Wax": _n(r, n_a, n_x), "Wya": _n(r, n_y, n_a), "ba": _n(r, n_a, 1),
            "by": _n(r, n_y, 1)}


def _lstm_params(r, n_x=3, n_a=5, n_y=2):
    p = {}
    for g in "fico":
        p["W" + g], p["b" + g] = _n(r, n_a, n_a + n_x), _n(r, n_a, 1)
    p["Wy"], p["by"] = _n(r, n_y, n_a), _n(r, n_y, 1)
    return p


def _linear(r):
    return _n(r, 3, 4), _n(r, 2, 3), _n(r, 2, 1)


KNOWN = {
    # course 1, week 4: m = 4 examples in columns; dW, db as the batch mean
    "linear_forward": Known(lambda r: [_linear(r)], (_linear_forward, _linear_backward),
                            batch_mean=(1, 2), batch_mean_names=("dW", "db")),
    "linear_activation_forward": Known(lambda r: [_linear(r) + (a,) for a in ACTIVATIONS],
                                       (_linear_activation_forward, _linear_activation_backward),
                                       geometries=8, batch_mean=(1, 2), batch_mean_names=("dW", "db"),
                                       option=3),
    "relu": Known(lambda r: [(_n(r, 3, 4),)], (npl.relu_forward, npl.relu_backward)),
    "sigmoid": Known(lambda r: [(_n(r, 3, 4),)], (npl.sigmoid_forward, npl.sigmoid_backward)),
    # course 4, week 1: pad 1 stride 1 and pad 0 stride 2 (the geometries students get wrong)
    "conv_forward": Known(lambda r: [(_n(r, 2, 5, 5, 3), _n(r, 3, 3, 3, 2), _n(r, 1, 1, 1, 2), {"stride": 1, "pad": 1}),
                                     (_n(r, 2, 5, 5, 3), _n(r, 3, 3, 3, 2), _n(r, 1, 1, 1, 2), {"stride": 2, "pad": 0})],
                          (_conv_forward, _conv_backward), geometries=2),
    "pool_forward": Known(lambda r: [(_n(r, 2, 4, 4, 3), {"f": 2, "stride": 2}, {"mode": m}) for m in ("max", "average")]
                          + [(_n(r, 1, 5, 5, 2), {"f": 3, "stride": 1}, {"mode": m}) for m in ("max", "average")],
                          (_pool_forward, _pool_backward), geometries=4,
                          ties="the course's mask (x == np.max(x)) gives the gradient to every tied maximum of a "
                               "window (not a subgradient there, but the course's documented rule)"),
    # course 5, week 1: n_x = 3, n_a = 5, n_y = 2, m = 4, T_x = 3
    "rnn_cell_forward": Known(lambda r: [(_n(r, 3, 4), _n(r, 5, 4), _rnn_params(r))]),
    "rnn_forward": Known(lambda r: [(_n(r, 3, 4, 3), _n(r, 5, 4), _rnn_params(r))]),
    "lstm_cell_forward": Known(lambda r: [(_n(r, 3, 4), _n(r, 5, 4), _n(r, 5, 4), _lstm_params(r))]),
    "lstm_forward": Known(lambda r: [(_n(r, 3, 4, 3), _n(r, 5, 4), _lstm_params(r))]),
}

#: the whole-network backwards of the course: d(cost)/d(parameters) through a network, not a
#: layer pair; per backward, its forward and cost function (None: the forward returns the
#: cost), checked by `jaxnets.gradcheck.networks` through the user's own pieces
NETWORKS = {
    "L_model_backward": ("L_model_forward", "compute_cost"),
    "backward_propagation": ("forward_propagation", "compute_cost"),
    "backward_propagation_n": ("forward_propagation_n", None),
    "backward_propagation_with_regularization": ("forward_propagation", "compute_cost_with_regularization"),
    "backward_propagation_with_dropout": ("forward_propagation_with_dropout", "compute_cost"),
}

CONVENTION = Convention("deeplearning.ai", KNOWN, forward_suffixes=("_forward", ""),
                        implicit_globals={"np": "numpy"}, networks=NETWORKS)
