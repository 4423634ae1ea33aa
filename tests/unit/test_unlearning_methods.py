"""The registry of importance methods: lookups, refusals, and a method added by a test alone.

The toy methods below are registered here and nowhere else: that the engine, the importances file
and the step's importance pass use them unchanged is the claim that adding a method costs one
module and one registry entry.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from lethe.errors import ImportancesError
from lethe.unlearning import METHODS, Importances, compute_importances, get_method, method_names
from lethe.unlearning.methods import (
    LFSSD,
    SQUARE,
    SSD,
    GradientTerm,
    ImportanceMethod,
    register_method,
    unregister_method,
)


def _quartic(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    return [g.pow(4) for g in grads]


def _logsumexp(outputs: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    return torch.logsumexp(outputs, dim=1).mean()


def _margin(outputs: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    assert labels is not None
    return outputs.gather(1, labels[:, None]).mean()


# Label-free with a term that has no in-place fast path; and one that needs labels.
TOY = ImportanceMethod(name="toy", objective=_logsumexp, term=GradientTerm("g⁴", _quartic),
                       needs_labels=False, reference="a test")
TOY_LABELLED = ImportanceMethod(name="toylabels", objective=_margin, term=SQUARE, needs_labels=True,
                                reference="a test")


@pytest.fixture
def toys() -> Iterator[None]:
    register_method(TOY)
    register_method(TOY_LABELLED)
    try:
        yield
    finally:
        unregister_method(TOY.name)
        unregister_method(TOY_LABELLED.name)


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(1 * 8 * 8, 6), nn.Tanh(), nn.Linear(6, 10))


def test_the_builtin_methods_are_registered_with_what_they_are() -> None:
    assert method_names()[:2] == ("lfssd", "ssd") and list(METHODS)[:2] == ["lfssd", "ssd"]
    assert get_method("lfssd") is LFSSD and get_method(SSD) is SSD
    assert (LFSSD.needs_labels, SSD.needs_labels) == (False, True)
    assert LFSSD.term.symbol == "|g|" and SSD.term.symbol == "g²"
    assert "2402.19308" in LFSSD.reference and "2308.07707" in SSD.reference


def test_an_unknown_method_is_refused_in_one_line_naming_the_known_ones() -> None:
    for call in (lambda: get_method("fisher"),
                 lambda: compute_importances(tiny_model(), [torch.randn(2, 1, 8, 8)], method="fisher",
                                             progress=False),
                 lambda: Importances({}, method="fisher", batch_size=1, num_batches=1, num_samples=1,
                                     model_fingerprint="0" * 64)):
        with pytest.raises(ImportancesError) as caught:
            call()
        message = str(caught.value)
        assert "\n" not in message and "'fisher'" in message and "lfssd, ssd" in message
    assert "fisher" not in METHODS and "ssd" in METHODS


def test_a_name_cannot_be_taken_twice_or_be_unfit_for_file_names() -> None:
    with pytest.raises(ImportancesError, match="already registered"):
        register_method(ImportanceMethod(name="ssd", objective=_logsumexp, term=SQUARE, needs_labels=False,
                                         reference="x"))
    assert get_method("ssd") is SSD
    for name in ("My-Method", "a/b", ""):
        with pytest.raises(ImportancesError, match="name"):
            ImportanceMethod(name=name, objective=_logsumexp, term=SQUARE, needs_labels=False, reference="x")


def _naive(model: nn.Module, x: torch.Tensor, y: torch.Tensor, size: int, objective, term) -> dict:
    totals = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    for start in range(0, len(x), size):
        model.zero_grad()
        objective(model(x[start:start + size]), y[start:start + size]).backward()
        for name, p in model.named_parameters():
            totals[name] += term(p.grad.detach())
    batches = -(-len(x) // size)
    return {name: t / batches for name, t in totals.items()}


@pytest.mark.usefixtures("toys")
@pytest.mark.parametrize("per_sample", [False, True])
def test_a_method_registered_here_runs_through_the_engine_unchanged(per_sample: bool, tmp_path) -> None:
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(12, 1, 8, 8, generator=generator), torch.randint(0, 10, (12,), generator=generator)
    model = tiny_model()
    for method, term in ((TOY, lambda g: g.pow(4)), (TOY_LABELLED, lambda g: g * g)):
        batches = [(x[i:i + 4], y[i:i + 4]) for i in range(0, 12, 4)]
        ours = compute_importances(model, batches, method=method.name, per_sample=per_sample, progress=False)
        expected = _naive(tiny_model(), x, y, 1 if per_sample else 4, method.objective, term)
        for name, value in expected.items():
            torch.testing.assert_close(ours[name], value, rtol=1e-5, atol=1e-12)
        assert ours.method == method.name and method.name in METHODS
        loaded = Importances.load(ours.save(tmp_path / f"{method.name}-{per_sample}.safetensors"))
        assert loaded.metadata == ours.metadata
    with pytest.raises(ImportancesError, match="TOYLABELS importances need labels"):
        compute_importances(model, [x[:4]], method="toylabels", progress=False)


@pytest.mark.usefixtures("toys")
def test_the_steps_importance_pass_gives_labels_to_a_method_that_needs_them(digits_train) -> None:
    from lethe.steps.importance_pass import importances_of

    samples = digits_train.subset(torch.arange(30))
    labelled = importances_of(tiny_model(), samples, method="toylabels", progress=False)
    free = importances_of(tiny_model(), samples, method="toy", progress=False)
    assert (labelled.method, labelled.num_samples, labelled.batch_size) == ("toylabels", 30, 1)
    assert free.method == "toy" and not torch.equal(labelled["3.bias"], free["3.bias"])
    # The head's bias gradient of the labelled margin is the label's one-hot: only seen labels count.
    seen = torch.zeros(10, dtype=torch.bool)
    seen[samples.labels.unique()] = True
    assert bool((labelled["3.bias"][seen] > 0).all()) and bool((labelled["3.bias"][~seen] == 0).all())
