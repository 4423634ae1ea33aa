"""The repair methods meant for memorised samples (`addresses` still_flagged) remove a memorised wrong
label from a toy model that learnt it, keep what the rest of the data taught, and state what labels they
need; a repair that does nothing fails the same check."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lethe.unlearning.repair import (
    RepairBudget,
    RepairData,
    RepairMethod,
    get_repair,
    repair_names,
    run_repair,
)

CLASSES, DIM = 4, 16


def _source(x: torch.Tensor, y: torch.Tensor):
    def batches(batch_size: int, seed: int):
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
        for start in range(0, len(y), batch_size):
            yield x[order[start:start + batch_size]], y[order[start:start + batch_size]]
    return batches


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models gain nothing from threads on a busy runner (as the `one_thread` fixture)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def memorised(_one_thread):
    """An MLP that fits 600 clustered samples and 24 of them with a wrong label (memorised)."""
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(CLASSES, DIM, generator=generator) * 1.6
    true = torch.randint(0, CLASSES, (600,), generator=generator)
    x = centres[true] + torch.randn(600, DIM, generator=generator)
    y = true.clone()
    y[:24] = (true[:24] + 1 + torch.randint(0, CLASSES - 1, (24,), generator=generator)) % CLASSES
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(DIM, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, CLASSES))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):  # full batch until the wrong labels are learnt
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    model.eval()
    test_true = torch.randint(0, CLASSES, (400,), generator=generator)
    test_x = centres[test_true] + torch.randn(400, DIM, generator=generator)
    data = RepairData(forget=_source(x[:24], y[:24]), retain=_source(x[24:], y[24:]), num_forget=24,
                      num_retain=576, num_classes=CLASSES)
    return model, data, (x[:24], y[:24]), (test_x, test_true)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def _repaired(method: RepairMethod, memorised) -> tuple[float, float]:
    """(agreement with the memorised wrong labels, test accuracy) after `method` at 10 epochs' worth."""
    model, data, (fx, fy), (tx, ty) = memorised
    candidate = copy.deepcopy(model)
    run_repair(method, copy.deepcopy(model), candidate, data, RepairBudget(6_000))
    return _accuracy(candidate, fx, fy), _accuracy(candidate, tx, ty)


def _removes_memorisation(agreement: float, test: float, before: tuple[float, float]) -> bool:
    return agreement <= 0.5 * before[0] and test >= before[1] - 0.05


FOR_MEMORISED = [n for n in repair_names() if "still_flagged" in get_repair(n).addresses]


def test_the_toy_memorised_its_wrong_labels(memorised):
    model, _, (fx, fy), (tx, ty) = memorised
    assert _accuracy(model, fx, fy) >= 0.9 and _accuracy(model, tx, ty) >= 0.8


@pytest.mark.parametrize("name", FOR_MEMORISED)
def test_a_method_for_memorised_samples_removes_the_wrong_labels_and_keeps_the_rest(memorised, name):
    model, _, (fx, fy), (tx, ty) = memorised
    before = (_accuracy(model, fx, fy), _accuracy(model, tx, ty))
    agreement, test = _repaired(get_repair(name), memorised)
    assert _removes_memorisation(agreement, test, before), (name, before, agreement, test)


def test_a_repair_that_does_nothing_fails_the_same_check(memorised):
    def idle(parent, candidate, data, meter, settings):
        meter.charge(1)
        return {}

    model, _, (fx, fy), (tx, ty) = memorised
    before = (_accuracy(model, fx, fy), _accuracy(model, tx, ty))
    nothing = RepairMethod(name="idle", repair=idle, needs_labels=False, default_share=0.1, addresses=(),
                           reference="a test")
    assert not _removes_memorisation(*_repaired(nothing, memorised), before)


def test_methods_for_memorised_samples_include_a_label_free_one_and_say_what_they_need():
    assert {"neggrad_plus", "scrub", "damage_repair"} <= set(FOR_MEMORISED)
    assert get_repair("scrub").needs_labels is False  # distillation from the parent only
    assert get_repair("neggrad_plus").needs_labels and get_repair("damage_repair").needs_labels


def test_scrub_reads_no_label(memorised):
    """SCRUB works from the parent's outputs: scrambled labels change nothing of what it does."""
    model, data, _, _ = memorised

    def scrambled(source):
        def batches(batch_size, seed):
            for x, y in source(batch_size, seed):
                yield x, (y + 1) % CLASSES
        return batches

    other = RepairData(forget=scrambled(data.forget), retain=scrambled(data.retain),
                       num_forget=data.num_forget, num_retain=data.num_retain, num_classes=CLASSES)
    results = []
    for given in (data, other):
        torch.manual_seed(0)
        candidate = copy.deepcopy(model)
        run_repair(get_repair("scrub"), copy.deepcopy(model), candidate, given, RepairBudget(1_000))
        results.append(candidate)
    pairs = zip(results[0].parameters(), results[1].parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
