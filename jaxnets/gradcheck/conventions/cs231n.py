"""cs231n's convention: the layers of assignments 2 and 3 (2017-2024) by name, with an
example geometry for each and, where the project has one, its own NumPy float64 twin as the
reference — so a student's unmodified `layers.py` or `rnn_layers.py` is checked with no extra
file.

`KNOWN[name]` for a forward (or a loss) name gives `examples(rng)`: candidate example calls
in the assignment's own conventions (dict parameters such as `conv_param`, `bn_param` with
mode "train", `dropout_param` with a fixed seed); where the years differ (group norm's gamma as
(C,) or (1, C, 1, 1)) several candidates are listed and the first the student's forward
accepts is used. `twin` adapts the project's twin to the assignment's signature.
"""
from __future__ import annotations

import numpy as np

from jaxnets.gradcheck.conventions import Convention, Known
from reference_numpy import layers as npl


def _n(rng, *shape):
    return rng.standard_normal(shape)


def _eps(param):
    return param.get("eps", 1e-5) if isinstance(param, dict) else 1e-5


def _bn_twin(forward, backward):
    def fwd(x, gamma, beta, bn_param):
        return forward(x, gamma, beta, eps=_eps(bn_param))

    return fwd, backward


def _gn_forward(x, gamma, beta, G, gn_param):
    out, cache = npl.spatial_groupnorm_forward(x, np.reshape(gamma, -1), np.reshape(beta, -1), groups=G,
                                               eps=_eps(gn_param))
    return out, (cache, np.shape(gamma))


def _gn_backward(dout, cache):
    cache, shape = cache
    dx, dgamma, dbeta = npl.spatial_groupnorm_backward(dout, cache)
    return dx, dgamma.reshape(shape), dbeta.reshape(shape)


def _conv_forward(x, w, b, conv_param):
    return npl.conv_forward(x, w, b, conv_param["stride"], conv_param["pad"])


def _pool_forward(x, pool_param):
    return npl.max_pool_forward(x, pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"])


def _labels(rng, n, c):
    return rng.integers(0, c, n)


KNOWN = {
    # ---------------------------------------------------------------- assignment 1 / 2
    "affine_forward": Known(lambda r: [(_n(r, 3, 2, 3), _n(r, 6, 4), _n(r, 4))],
                            (npl.affine_forward, npl.affine_backward)),
    "relu_forward": Known(lambda r: [(_n(r, 4, 5),)], (npl.relu_forward, npl.relu_backward)),
    "softmax_loss": Known(lambda r: [(_n(r, 5, 4), _labels(r, 5, 4))], npl.softmax_loss),
    "svm_loss": Known(lambda r: [(_n(r, 5, 4), _labels(r, 5, 4))], npl.svm_loss),
    "batchnorm_forward": Known(lambda r: [(_n(r, 6, 4), _n(r, 4), _n(r, 4), {"mode": "train"})],
                               _bn_twin(npl.batchnorm_forward, npl.batchnorm_backward)),
    "layernorm_forward": Known(lambda r: [(_n(r, 4, 6), _n(r, 6), _n(r, 6), {})],
                               _bn_twin(npl.layernorm_forward, npl.layernorm_backward)),
    "spatial_batchnorm_forward": Known(lambda r: [(_n(r, 3, 2, 3, 3), _n(r, 2), _n(r, 2), {"mode": "train"})],
                                       _bn_twin(npl.spatial_batchnorm_forward, npl.spatial_batchnorm_backward)),
    "spatial_groupnorm_forward": Known(lambda r: [(_n(r, 2, 4, 3, 3), _n(r, 1, 4, 1, 1), _n(r, 1, 4, 1, 1), 2, {}),
                                                  (_n(r, 2, 4, 3, 3), _n(r, 4), _n(r, 4), 2, {})],
                                       (_gn_forward, _gn_backward)),
    # dropout: no twin (each year draws its mask its own way); finite differences with a fixed seed
    "dropout_forward": Known(lambda r: [(_n(r, 4, 5), {"p": 0.5, "mode": "train", "seed": 123})]),
    # the geometries cs231n's solutions most often get wrong: pad 1 and pad 0, stride 2
    "conv_forward_naive": Known(lambda r: [(_n(r, 2, 3, 5, 5), _n(r, 2, 3, 3, 3), _n(r, 2), {"stride": 1, "pad": 1}),
                                           (_n(r, 2, 3, 5, 5), _n(r, 2, 3, 3, 3), _n(r, 2), {"stride": 2, "pad": 0})],
                                (_conv_forward, npl.conv_backward), geometries=2),
    "max_pool_forward_naive": Known(lambda r: [(_n(r, 2, 3, 4, 4), {"pool_height": 2, "pool_width": 2, "stride": 2}),
                                               (_n(r, 1, 2, 5, 5), {"pool_height": 3, "pool_width": 3, "stride": 1})],
                                    (_pool_forward, npl.max_pool_backward), geometries=2),
    # ---------------------------------------------------------------- assignment 3
    "rnn_step_forward": Known(lambda r: [(_n(r, 3, 4), _n(r, 3, 5), _n(r, 4, 5), _n(r, 5, 5), _n(r, 5))],
                              (npl.rnn_step_forward, npl.rnn_step_backward)),
    "rnn_forward": Known(lambda r: [(_n(r, 2, 3, 4), _n(r, 2, 5), _n(r, 4, 5), _n(r, 5, 5), _n(r, 5))],
                         (npl.rnn_forward, npl.rnn_backward)),
    "lstm_step_forward": Known(lambda r: [(_n(r, 3, 4), _n(r, 3, 5), _n(r, 3, 5), _n(r, 4, 20), _n(r, 5, 20),
                                           _n(r, 20))], (npl.lstm_step_forward, npl.lstm_step_backward)),
    "lstm_forward": Known(lambda r: [(_n(r, 2, 3, 4), _n(r, 2, 5), _n(r, 4, 20), _n(r, 5, 20), _n(r, 20))],
                          (npl.lstm_forward, npl.lstm_backward)),
    "word_embedding_forward": Known(lambda r: [(r.integers(0, 6, (2, 4)), _n(r, 6, 3))],
                                    (npl.word_embedding_forward, npl.word_embedding_backward)),
    "temporal_affine_forward": Known(lambda r: [(_n(r, 2, 3, 4), _n(r, 4, 5), _n(r, 5))],
                                     (npl.temporal_affine_forward, npl.temporal_affine_backward)),
    "temporal_softmax_loss": Known(lambda r: [(_n(r, 2, 3, 5), r.integers(0, 5, (2, 3)),
                                               np.array([[True, True, False], [True, False, False]]))],
                                   npl.temporal_softmax_loss),
}
for _alias in ("conv_forward_fast", "conv_forward_im2col", "conv_forward_strides"):
    KNOWN[_alias] = KNOWN["conv_forward_naive"]
for _alias in ("max_pool_forward_fast", "max_pool_forward_reshape", "max_pool_forward_im2col"):
    KNOWN[_alias] = KNOWN["max_pool_forward_naive"]


#: pairs `X_forward[_S]` / `X_backward[_S]` (the naming rules in `discover.find`); row layout
CONVENTION = Convention("cs231n", KNOWN, forward_suffixes=("_forward",),
                        losses=("softmax_loss", "svm_loss", "temporal_softmax_loss"))
