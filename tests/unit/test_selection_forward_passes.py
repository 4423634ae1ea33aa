"""The search's forward passes: an α that selects a set already measured costs none, and the choice stays
exactly today's (bisection on log α, each trial a freshly dampened copy measured in full)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lethe.evaluation import ClassTarget
from lethe.unlearning import Importances, dampen, model_fingerprint
from lethe.unlearning.calibration import bisect_log_alpha
from lethe.unlearning.selection import select_dampening


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 3)).eval()
    with torch.no_grad():
        model[0].bias.copy_(torch.tensor([4.0, 3.0, 0.0]))  # class 0 for most inputs, class 1 next
    return model


def _importances(model: nn.Module, ratios: torch.Tensor) -> tuple[Importances, Importances]:
    """I_D = 1 everywhere and I_f = `ratios` (weight then bias): few distinct ratios, so many α select
    the same elements."""
    meta = dict(method="lfssd", batch_size=1, num_batches=10, num_samples=10,
                model_fingerprint=model_fingerprint(model))
    weight, bias = model[0].weight, model[0].bias
    full = Importances({"0.weight": torch.ones_like(weight), "0.bias": torch.ones_like(bias)}, **meta)
    forget = Importances({"0.weight": ratios[:weight.numel()].reshape(weight.shape).clone(),
                          "0.bias": ratios[weight.numel():].clone()}, **meta)
    return full, forget


class Counting(ClassTarget):
    """The class target, counting forward passes over the retain sample."""

    retain_passes = 0

    def _logits(self, model: nn.Module, batches):  # noqa: ANN001, ANN202
        if batches is self.retain:
            type(self).retain_passes += 1
        return super()._logits(model, batches)


@pytest.fixture
def request_parts():
    model = _model()
    # Weights 1.5; biases 40 (class 0: dampening it forgets the class), 0.5 (never selected), 3.
    ratios = torch.tensor([1.5] * 18 + [40.0, 0.5, 3.0])
    full, forget = _importances(model, ratios)
    generator = torch.Generator().manual_seed(1)
    forget_inputs = [torch.randn(30, 6, generator=generator)]
    retain_inputs = [torch.randn(30, 6, generator=generator)]

    def target(cls: type[ClassTarget] = ClassTarget) -> ClassTarget:
        return cls(model, forget_inputs, retain_inputs, forget_class=0, limit=0.2, device="cpu")

    return model, full, forget, target


def test_alphas_that_select_the_same_elements_cost_no_forward_pass(request_parts) -> None:
    model, full, forget, target = request_parts
    measuring = target()
    calls = []
    measure = measuring.measure
    measuring.measure = lambda candidate, **kw: (calls.append(1), measure(candidate, **kw))[1]
    selection = select_dampening(model, full, forget, measuring, low=1.0, high=100.0, steps=10)
    assert selection.found
    # Four distinct selections (thresholds at ratios 1.5, 3 and 40): at most four forward passes in 12 trials.
    assert len(selection.trials) == 12
    assert selection.forward_trials == len(calls) <= 4

    # Exactly today's search: every trial a freshly dampened copy, measured in full.
    fresh, met = target(), []

    def trial(alpha: float) -> bool:
        candidate = copy.deepcopy(model)
        dampen(candidate, full, forget, alpha=alpha)
        met.append(fresh(candidate))
        return met[-1]

    assert selection.alpha == bisect_log_alpha(trial, 1.0, 100.0, 10)
    assert [t.met for t in selection.trials] == met
    assert [t.value for t in selection.trials] == [m.value for m in fresh.measurements]
    for recorded, measured in zip(selection.trials, fresh.measurements, strict=True):
        if recorded.met:
            assert recorded.retain_agreement == pytest.approx(measured.retain_agreement)


def test_a_missed_candidate_is_decided_on_the_forget_samples_alone(request_parts) -> None:
    model, full, forget, target = request_parts
    counting = target(Counting)
    Counting.retain_passes = 0
    missed = counting.measure(copy.deepcopy(model), decided_only=True)  # the original: not forgotten
    assert not missed.met and missed.retain_agreement is None and Counting.retain_passes == 0
    assert counting.measure(copy.deepcopy(model)).retain_agreement == 1.0  # a report measures it
    assert Counting.retain_passes == 1
    forgotten = copy.deepcopy(model)
    dampen(forgotten, full, forget, alpha=10.0)  # the class-0 bias (ratio 40) dampened
    met = counting.measure(forgotten, decided_only=True)
    assert met.met and met.retain_agreement is not None and Counting.retain_passes == 2


def test_negative_importances_measure_every_trial(request_parts) -> None:
    model, full, forget, target = request_parts
    negative = Importances({name: value - 2.0 for name, value in full.items()}, **full.metadata)
    selection = select_dampening(model, negative, forget, target(), low=1.0, high=100.0, steps=4)
    assert selection.forward_trials == len(selection.trials)
