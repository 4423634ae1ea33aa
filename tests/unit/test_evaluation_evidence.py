"""Evidence for the reviewer: plots, the Evidently report (and its failures), forgetting targets."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from lethe.errors import EvaluationError
from lethe.evaluation import (
    Check,
    ClassTarget,
    comparison_frame,
    dampened_share_per_layer,
    evidently_disagreements,
    plot_dampening,
    plot_entropy_distributions,
    write_evidently_report,
)


def test_dampened_share_is_counted_per_layer() -> None:
    report = {"alpha": 10.0, "lam": 1.0,
              "selected": {"features.0.weight": 3, "features.0.bias": 1, "head.weight": 0},
              "elements": {"features.0.weight": 30, "features.0.bias": 10, "head.weight": 50}}
    assert dampened_share_per_layer(report) == {"features.0": 0.1, "head": 0.0}


def test_plots_are_real_images(tmp_path) -> None:
    from matplotlib.image import imread

    gen = torch.Generator().manual_seed(0)
    before = {"retain": torch.rand(200, generator=gen) * 0.2, "forget": torch.rand(50, generator=gen) * 0.2,
              "test": torch.rand(100, generator=gen)}
    after = {**before, "forget": torch.full((50,), float(np.log(10)) + 1e-6)}  # uniform softmax
    entropy_png = plot_entropy_distributions(before, after, tmp_path / "entropy.png", num_classes=10)
    damp_png = plot_dampening({"alpha": 7.5, "lam": 1.0, "selected": {"a.weight": 5, "b.weight": 0},
                               "elements": {"a.weight": 10, "b.weight": 10}}, tmp_path / "damp.png")
    for path in (entropy_png, damp_png):
        image = imread(path)
        assert image.shape[0] > 100 and image.shape[1] > 100
        assert float(image[..., :3].std()) > 0.01  # not a blank canvas


def _frame(n: int = 60, k: int = 3):
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, k, (n,), generator=gen)
    sharp = torch.nn.functional.one_hot(labels, k).float() * 5 + torch.randn(n, k, generator=gen)
    return comparison_frame(sharp, torch.randn(n, k, generator=gen), labels)


@pytest.mark.slow
def test_the_evidently_report_compares_candidate_with_parent_under_those_names(tmp_path) -> None:
    frame = _frame()
    drop = float((frame["target"] == frame["parent_prediction"]).mean()
                 - (frame["target"] == frame["candidate_prediction"]).mean())
    checks = [Check("test_accuracy_drop", drop, 0.02, False, "dropped"),
              Check("member_rate_gap", 0.01, 0.05, True, "")]
    report = write_evidently_report({"test": frame}, checks, tmp_path / "r.html", tmp_path / "r.json")
    values = {(m["section"], m["metric_name"]): m["value"] for m in report["metrics"]}
    assert values[("test", "Accuracy(classification_name=candidate)")] == pytest.approx(
        float((frame["candidate_prediction"] == frame["target"]).mean()))
    assert values[("test", "Accuracy(classification_name=parent)")] == pytest.approx(1.0)
    # Each gate check has its test: the drop where Evidently measures it, the gap in the gate section.
    assert {(t["section"], t["check"], t["status"]) for t in report["tests"]} == {
        ("test", "test_accuracy_drop", "FAIL"), ("gate", "member_rate_gap", "SUCCESS")}
    assert evidently_disagreements(report, checks) == []
    # A test that disagreed with the gate would be found.
    assert evidently_disagreements(report, [checks[0], Check("member_rate_gap", 0.01, 0.05, False, "x")])
    assert (tmp_path / "r.html").stat().st_size > 10_000


@pytest.mark.slow
def test_an_evidently_failure_fails_the_step(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evidently import Report

    def broken(*args, **kwargs):
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(Report, "run", broken)
    with pytest.raises(EvaluationError, match="Evidently report failed: RuntimeError: renderer exploded"):
        write_evidently_report({"test": _frame()}, [], tmp_path / "r.html", tmp_path / "r.json")
    with pytest.raises(EvaluationError, match="non-empty sets of samples"):
        write_evidently_report({"test": _frame().iloc[:0]}, [], tmp_path / "r.html", tmp_path / "r.json")


def test_the_class_target_measures_agreement_with_the_original() -> None:
    torch.manual_seed(0)
    original = nn.Sequential(nn.Linear(4, 3)).eval()
    with torch.no_grad():
        original[0].bias.copy_(torch.tensor([10.0, 0.0, 0.0]))  # predicts class 0 everywhere
    forget = [torch.randn(40, 4)]
    retain = [torch.randn(30, 4)]
    target = ClassTarget(original, forget, retain, limit=0.05)
    assert not target(copy.deepcopy(original))  # unchanged: agrees everywhere
    forgotten = copy.deepcopy(original)
    with torch.no_grad():
        forgotten[0].bias.copy_(torch.tensor([0.0, 10.0, 0.0]))
    assert target(forgotten)
    first, second = target.measurements
    assert (first.value, first.retain_agreement) == (1.0, 1.0)
    assert (second.value, second.retain_agreement, second.met) == (0.0, 0.0, True)
