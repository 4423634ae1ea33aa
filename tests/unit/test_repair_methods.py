"""Repair methods (`lethe.unlearning.repair`): the budget holds, the registry is the one place, and every
registered method runs on a toy model within its budget and leaves a usable candidate."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lethe.errors import RepairError
from lethe.unlearning.repair import (
    RepairBudget,
    RepairData,
    RepairMethod,
    get_repair,
    register_repair,
    repair_names,
    run_repair,
    unregister_repair,
)


def _source(x: torch.Tensor, y: torch.Tensor):
    def batches(batch_size: int, seed: int):
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
        for start in range(0, len(y), batch_size):
            index = order[start:start + batch_size]
            yield x[index], y[index]
    return batches


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    x = torch.randn(300, 8)
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)).eval()
    data = RepairData(forget=_source(x[:20], y[:20]), retain=_source(x[20:], y[20:]), num_forget=20,
                      num_retain=280, num_classes=2)
    return model, data


@pytest.mark.parametrize("name", repair_names())
def test_every_registered_method_stays_within_its_budget_and_leaves_finite_weights(toy, name):
    model, data = toy
    parent, candidate = copy.deepcopy(model), copy.deepcopy(model)
    budget = RepairBudget(1000)
    report = run_repair(get_repair(name), parent, candidate, data, budget)
    assert 0 < report.sample_steps <= budget.sample_steps
    assert not candidate.training
    assert all(torch.equal(a, b) for a, b in zip(parent.parameters(), model.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(candidate.parameters(), model.parameters(), strict=True))


def test_a_repair_that_would_exceed_its_budget_stops_and_says_so(toy):
    model, data = toy

    def greedy(parent, candidate, data, meter, settings):
        for _ in range(100):  # wants 100 batches of 50 samples: 5,000 sample-steps
            meter.charge(50)
        return {}

    method = RepairMethod(name="greedy", repair=greedy, needs_labels=False, default_share=0.1,
                          addresses=(), reference="a test")
    report = run_repair(method, copy.deepcopy(model), copy.deepcopy(model), data, RepairBudget(120))
    assert report.stopped == "budget"
    assert report.sample_steps == 100  # two batches fit, the third would have exceeded 120


def test_budgets_are_shares_of_the_recipe_and_refuse_nonsense():
    assert RepairBudget.share_of_recipe(0.2, training_samples=5000, epochs=30).sample_steps == 30_000
    for share in (0.0, -0.1, float("nan"), float("inf")):
        with pytest.raises(RepairError):
            RepairBudget.share_of_recipe(share, training_samples=5000, epochs=30)
    with pytest.raises(RepairError):
        RepairBudget(0)


def test_the_registry_refuses_unknown_names_and_duplicates():
    with pytest.raises(RepairError, match="unknown repair method 'nope'"):
        get_repair("nope")
    method = RepairMethod(name="toy", repair=lambda *a: {}, needs_labels=False, default_share=0.1,
                          addresses=(), reference="a test")
    register_repair(method)
    try:
        assert "toy" in repair_names()
        with pytest.raises(RepairError, match="already registered"):
            register_repair(RepairMethod(name="toy", repair=lambda *a: {}, needs_labels=False,
                                         default_share=0.1, addresses=(), reference="another"))
    finally:
        unregister_repair("toy")
    assert "toy" not in repair_names()
