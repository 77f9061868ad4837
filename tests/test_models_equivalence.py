"""Every model's gradient five ways: the jaxnets.grads modes (manual, autodiff, custom_vjp, and
fast where the model has a fast layout), the NumPy model's loss_and_grads and finite
differences of the NumPy loss (kink-free cases of the small, random-parameter variants), at the
documents' sizes too; float32 with its own bound."""
import numpy as np
import pytest

from jaxnets.conformance import MODEL_VARIANTS, compare_model, kink_distance, make_model_case
from jaxnets.grads import MODES
from jaxnets.models import MODELS

SEEDS = (0, 1, 2)
VARIANTS = [(name, variant) for name in MODEL_VARIANTS for variant in MODEL_VARIANTS[name]]


def _ids(v):
    return f"{v[0]}-{v[1]}"


@pytest.mark.parametrize("stress", [False, True], ids=["ordinary", "stress"])
@pytest.mark.parametrize("model", VARIANTS, ids=_ids)
def test_model_gradients_agree_float64(model, stress):
    name, variant = model
    failures, fd_ran = [], 0
    for seed in SEEDS:
        case = make_model_case(name, variant, seed, stress)
        result = compare_model(case)
        fd_ran += result.settings["fd"]
        if not result.ok:
            failures.append(result.summary())
    assert not failures, "\n".join(failures)
    if variant != "document" and not stress:
        assert fd_ran == len(SEEDS), f"{name}/{variant}: finite differences ran on {fd_ran}/{len(SEEDS)} cases"


@pytest.mark.parametrize("model", VARIANTS, ids=_ids)
def test_model_gradients_agree_float32(model):
    name, variant = model
    failures = []
    for seed, stress in ((0, False), (1, True)):
        result = compare_model(make_model_case(name, variant, seed, stress), dtype=np.float32)
        if not result.ok:
            failures.append(result.summary())
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("name", ["digits", "two_layer", "conv"])
def test_stress_cases_put_relu_inputs_exactly_on_the_kink(name):
    case = make_model_case(name, "small" if name != "conv" else "strided", 0, stress=True)
    assert kink_distance(MODELS[name](**case.config), case.params, case.x, case.y) == 0.0
    assert not case.fd


def test_every_model_and_mode_is_covered():
    assert set(MODEL_VARIANTS) == {"occupancy", "digits", "two_layer", "conv", "fc_net", "deep_conv",
                                  "char_lm", "row_lstm", "transformer_lm"}
    assert tuple(MODES) == ("manual", "autodiff", "custom_vjp")
