"""Evidence for the reviewer: plots, the Evidently report (and its failures), forgetting targets."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from torch import nn

from lethe.errors import EvaluationError
from lethe.evaluation import (
    ClassTarget,
    dampened_share_per_layer,
    plot_dampening,
    plot_entropy_distributions,
    predictions_frame,
    write_evidently_report,
)


def test_dampened_share_is_counted_per_layer() -> None:
    report = {"alpha": 10.0, "lam": 1.0,
              "selected": {"features.0.weight": 3, "features.0.bias": 1, "head.weight": 0},
              "elements": {"features.0.weight": 30, "features.0.bias": 10, "head.weight": 50}}
    assert dampened_share_per_layer(report) == {"features.0": 0.1, "head": 0.0}


def test_plots_are_real_images(tmp_path) -> None:
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


def _frames(n: int = 60, k: int = 3) -> tuple:
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, k, (n,), generator=gen)
    sharp = torch.nn.functional.one_hot(labels, k).float() * 5 + torch.randn(n, k, generator=gen)
    subsets = ["test"] * n
    return predictions_frame(sharp, labels, subsets), predictions_frame(torch.randn(n, k, generator=gen),
                                                                        labels, subsets)


def test_the_evidently_report_compares_candidate_with_parent(tmp_path) -> None:
    parent, candidate = _frames()
    report = write_evidently_report(parent, candidate, tmp_path / "r.html", tmp_path / "r.json")
    accuracy = next(m["value"] for m in report["metrics"] if m["metric_name"].startswith("Accuracy"))
    assert accuracy == pytest.approx(float((candidate["prediction"] == candidate["target"]).mean()))
    assert any(m["metric_name"].startswith("ValueDrift(column=prediction") for m in report["metrics"])
    assert (tmp_path / "r.html").stat().st_size > 10_000


def test_an_evidently_failure_fails_the_step(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evidently import Report

    def broken(*args, **kwargs):
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(Report, "run", broken)
    parent, candidate = _frames()
    with pytest.raises(EvaluationError, match="Evidently report failed: RuntimeError: renderer exploded"):
        write_evidently_report(parent, candidate, tmp_path / "r.html", tmp_path / "r.json")
    with pytest.raises(EvaluationError, match="same, non-empty set"):
        write_evidently_report(parent, candidate.iloc[:10], tmp_path / "r.html", tmp_path / "r.json")


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
