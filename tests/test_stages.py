"""The stage table (`netspec.stages`) and its two interpreters (`jaxnets.models.stages`,
`reference_numpy.stages`) on what no built-in model exercises: a stage with two outputs
(`lstm_step`: next_h, next_c), a value left on the stream that the loss never reads (its
gradient is zero), and a parameter shared by two stages (its gradient is the sum). Float64."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnets import ops
from jaxnets.models import stages as S
from netspec.stages import KINDS, Stage, stage
from reference_numpy import stages as NS
from reference_numpy.numerical import rel_error

N, D, H, C = 3, 2, 4, 3

# x1, x0, h0, c0 on the stream; two LSTM steps sharing Wx, Wh, b leave [h2, c2]; the readout
# reads c2 (the top), so h2 is left unread and the scores are affine(c2)
UNROLLED = (stage("lstm_step"), stage("lstm_step"), stage("affine", "_out"))


def _case(seed=0):
    r = np.random.default_rng(seed)
    params = {"Wx": r.standard_normal((D, 4 * H)) / 2, "Wh": r.standard_normal((H, 4 * H)) / 2,
              "b": r.standard_normal(4 * H), "W_out": r.standard_normal((H, C)), "b_out": r.standard_normal(C)}
    stream = tuple(r.standard_normal(s) for s in ((N, D), (N, D), (N, H), (N, H)))
    return params, stream, r.integers(0, C, N)


def _by_hand(params, stream, y):
    """The same network written out with the pairs: what the interpreter must equal."""
    x1, x0, h0, c0 = stream
    h1, c1, _ = ops.lstm_step_forward(x0, h0, c0, params["Wx"], params["Wh"], params["b"])
    _, c2, _ = ops.lstm_step_forward(x1, h1, c1, params["Wx"], params["Wh"], params["b"])
    return ops.softmax_loss(c2 @ params["W_out"] + params["b_out"], y)[0]


def _manual(params, stream, y):
    scores, tape, _ = S.manual_forward(UNROLLED, params, tuple(map(jnp.asarray, stream)))
    value, dscores = ops.softmax_loss(scores, y)
    return value, S.manual_backward(UNROLLED, params, tape, dscores)


def test_two_output_stage_and_shared_parameters_in_every_mode():
    params, stream, y = _case()
    jparams = {k: jnp.asarray(v) for k, v in params.items()}
    want_value, want = jax.value_and_grad(_by_hand)(jparams, stream, y)
    value, grads = _manual(jparams, stream, y)
    assert abs(float(value) - float(want_value)) < 1e-12
    assert set(grads) == set(params)
    for layers in (ops.AUTODIFF, ops.CUSTOM_VJP):
        g = jax.grad(lambda p: ops.softmax_loss(S.forward(UNROLLED, p, tuple(map(jnp.asarray, stream)), layers)[0],
                                                y)[0])(jparams)
        for k in params:
            assert rel_error(np.asarray(g[k]), np.asarray(want[k])) < 1e-10, (layers, k)
    out, tape, _ = NS.run(UNROLLED, params, stream)
    np_value, dscores = __import__("reference_numpy").layers.softmax_loss(out, y)
    np_grads = NS.backward(UNROLLED, params, tape, dscores)
    assert abs(np_value - float(want_value)) < 1e-12
    for k in params:
        assert rel_error(np.asarray(grads[k]), np.asarray(want[k])) < 1e-10, k
        assert rel_error(np_grads[k], np.asarray(want[k])) < 1e-10, k


def test_shared_parameter_gradient_is_the_sum_over_its_stages():
    """Wx's gradient with the two steps' weights separate, summed, is the shared one's: an
    interpreter that assigned instead of summed would keep only the first step's."""
    params, stream, y = _case(1)
    jparams = {k: jnp.asarray(v) for k, v in params.items()}
    split = (Stage("lstm_step", "", ("Wx_a", "Wh", "b")), Stage("lstm_step", "", ("Wx_b", "Wh", "b")),
             stage("affine", "_out"))
    p2 = {**{k: v for k, v in jparams.items() if k != "Wx"}, "Wx_a": jparams["Wx"], "Wx_b": jparams["Wx"]}
    scores, tape, _ = S.manual_forward(split, p2, tuple(map(jnp.asarray, stream)))
    g2 = S.manual_backward(split, p2, tape, ops.softmax_loss(scores, y)[1])
    _, g = _manual(jparams, stream, y)
    assert float(jnp.max(jnp.abs(g2["Wx_a"]))) > 0 and float(jnp.max(jnp.abs(g2["Wx_b"]))) > 0
    assert rel_error(np.asarray(g["Wx"]), np.asarray(g2["Wx_a"] + g2["Wx_b"])) < 1e-12


def test_every_kind_names_ops_that_exist_in_both_backends():
    """A kind's pair resolves in jaxnets.ops, its Layers field and reference_numpy.layers (and
    `{pair}_inference` for a kind with statistics): the table holds nothing one side lacks."""
    import reference_numpy.layers as npl

    for name, kind in KINDS.items():
        for suffix in ("_forward", "_backward") + (("_inference",) if kind.statistics else ()):
            assert callable(getattr(ops, kind.pair + suffix)), (name, suffix)
            assert callable(getattr(npl, kind.pair + suffix)), (name, suffix)
        assert kind.pair in ops.Layers._fields, name
        assert set(kind.optional) <= set(kind.params) and kind.state_from in ("", *kind.params), name


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown stage kind 'lstmm'"):
        stage("lstmm")
