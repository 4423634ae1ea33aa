"""The selection of where to dampen (cut-off) and how much (α): exact, cached, never worse."""

from __future__ import annotations

import copy

import pytest
import torch

from lethe.errors import ImportancesError
from lethe.evaluation import ClassTarget
from lethe.models import build_model
from lethe.models.stages import forward_stages
from lethe.steps.importance_pass import importances_of
from lethe.unlearning import dampen, model_fingerprint
from lethe.unlearning.calibration import bisect_log_alpha
from lethe.unlearning.selection import EVERY_LAYER, cutoff_names, select_dampening


@pytest.mark.parametrize(("arch", "shape"), [("convnet", (3, 1, 28, 28)), ("resnet18-cifar", (2, 3, 32, 32))])
def test_the_stages_compose_to_the_model(arch: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = build_model(arch, num_classes=10, in_channels=shape[1]).eval()
    x = torch.randn(shape)
    stages = forward_stages(model)
    assert len(stages) >= 4
    out = x
    for _, module in stages:
        out = module(out)
    torch.testing.assert_close(out, model(x))
    # Every parameter belongs to exactly one stage.
    owned = [id(p) for _, module in stages for p in module.parameters()]
    assert sorted(owned) == sorted(id(p) for p in model.parameters())


def test_a_model_of_unknown_architecture_is_one_stage() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    assert [name for name, _ in forward_stages(model)] == ["model"]
    assert cutoff_names(forward_stages(model)) == [EVERY_LAYER]


@pytest.fixture(scope="module")
def class_request(digits_convnet_dir, digits_train):
    # Module-scoped: the per-sample importances of the training set are the costly part. The tests
    # only read the model and the importances; the teardown checks that none of them changed.
    from lethe.models import load_model

    model, _ = load_model(digits_convnet_dir)
    forget_ids = (digits_train.labels == 3).nonzero().flatten()
    retain_ids = (digits_train.labels != 3).nonzero().flatten()
    forget_set, retain_set = digits_train.subset(forget_ids), digits_train.subset(retain_ids)
    full = importances_of(model, digits_train, progress=False)
    forget = importances_of(model, forget_set, progress=False)

    def target():
        return ClassTarget(model, forget_set.batches(256, with_labels=False),
                           retain_set.batches(256, with_labels=False), device="cpu")

    before = model_fingerprint(model), {name: value.clone() for name, value in full.items()}, \
        {name: value.clone() for name, value in forget.items()}
    yield model, full, forget, target
    assert model_fingerprint(model) == before[0], "a test changed the shared model"
    for kept, now in ((before[1], full), (before[2], forget)):
        assert all(torch.equal(kept[name], now[name]) for name in kept), "a test changed shared importances"


def test_the_selection_meets_the_target_with_the_best_retained_agreement(class_request) -> None:
    model, full, forget, target = class_request
    before = model_fingerprint(model)
    selection = select_dampening(model, full, forget, target(), stages=forward_stages, low=1.0, high=10.0)
    assert model_fingerprint(model) == before  # trials never touch the model
    assert selection.found and selection.cutoff in cutoff_names(forward_stages(model))
    assert set(selection.cutoffs) == set(cutoff_names(forward_stages(model)))
    chosen = selection.chosen_trial
    assert chosen is not None and chosen.met
    # No cut-off's best (largest α that met) retains more than the chosen one.
    for cutoff in selection.cutoffs:
        met = [t for t in selection.trials if t.cutoff == cutoff and t.met]
        if met:
            assert max(met, key=lambda t: t.alpha).retain_agreement <= chosen.retain_agreement + 1e-12

    # The cached-prefix trial measured exactly what dampening the whole model there measures.
    candidate = copy.deepcopy(model)
    report = dampen(candidate, full, forget, alpha=selection.alpha, parameters=selection.parameters)
    measured = target().measure(candidate)
    assert measured.met
    assert measured.retain_agreement == pytest.approx(chosen.retain_agreement, abs=1e-6)
    assert measured.forget_agreement == pytest.approx(chosen.forget_agreement, abs=1e-6)
    assert report.fraction == pytest.approx(chosen.fraction_dampened)
    untouched = set(dict(model.named_parameters())) - set(selection.parameters)
    for name, value in candidate.named_parameters():
        if name in untouched:
            assert torch.equal(value, dict(model.named_parameters())[name])


def test_every_layer_alone_is_todays_alpha_search(class_request) -> None:
    model, full, forget, target = class_request
    selection = select_dampening(model, full, forget, target(), stages=forward_stages, cutoffs=[EVERY_LAYER],
                                 low=1.0, high=10.0, steps=8)
    # Today's search by hand: bisection on log α, each trial a dampened copy of the whole model.
    meets_target, met = target(), []

    def trial(alpha: float) -> bool:
        candidate = copy.deepcopy(model)
        dampen(candidate, full, forget, alpha=alpha)
        met.append(meets_target(candidate))
        return met[-1]

    assert selection.alpha == pytest.approx(bisect_log_alpha(trial, 1.0, 10.0, 8))
    assert [t.met for t in selection.trials] == met
    assert len(selection.parameters) == len(list(model.parameters()))


def test_a_fixed_alpha_tries_each_cutoff_once(class_request) -> None:
    model, full, forget, target = class_request
    selection = select_dampening(model, full, forget, target(), stages=forward_stages, alpha=2.0)
    assert [t.cutoff for t in selection.trials] == cutoff_names(forward_stages(model))
    assert all(t.alpha == 2.0 for t in selection.trials)


def test_unknown_cutoffs_are_refused(class_request) -> None:
    model, full, forget, target = class_request
    expected = "unknown cut-off 'block9'.*all, block2, block3, hidden, output"
    with pytest.raises(ImportancesError, match=expected):
        select_dampening(model, full, forget, target(), stages=forward_stages, cutoffs=["block9"])
