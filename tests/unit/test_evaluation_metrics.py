"""Accuracy, agreement, entropy, batched forward passes and membership inference on tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lethe.errors import EvaluationError
from lethe.evaluation import (
    accuracy,
    agreement,
    calibrated_gap,
    entropy,
    membership_inference,
    predict_logits,
)


def test_accuracy_and_agreement_count_samples_not_batches() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    labels = torch.tensor([0, 0, 0, 1])
    assert accuracy(logits, labels) == 0.75
    assert accuracy(logits, labels, weights=torch.tensor([1.0, 3.0, 0.0, 0.0])) == 0.25
    assert agreement(logits, torch.tensor([[1.0, 0.0]] * 4)) == 0.5
    assert math.isnan(accuracy(logits[:0], labels[:0]))
    with pytest.raises(EvaluationError):
        accuracy(logits, labels, weights=torch.zeros(4))


def test_entropy_spans_zero_to_log_k() -> None:
    values = entropy(torch.tensor([[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]]))
    assert values[0].item() == pytest.approx(math.log(4), abs=1e-6)
    assert values[1].item() == pytest.approx(0.0, abs=1e-6)


def test_batched_forward_equals_one_pass_and_restores_the_model() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).train()
    model[1].running_mean.normal_()
    x = torch.randn(37, 5)
    batches = [x[i:i + 10] for i in range(0, 37, 10)]
    logits = predict_logits(model, batches, progress=False)
    assert model.training  # restored
    with torch.no_grad():
        expected = model.eval()(x)
    assert torch.allclose(logits, expected, atol=1e-6)
    model(x).sum().backward()  # parameters can still take gradients (importances need them)


def test_a_model_that_outputs_nan_is_refused() -> None:
    model = nn.Linear(4, 3)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    with pytest.raises(EvaluationError, match="NaN or Inf for 5 of 5 samples"):
        predict_logits(model, [torch.ones(5, 4)], progress=False)


def _logits(n: int, confidence: float, gen: torch.Generator, k: int = 10) -> torch.Tensor:
    """Logits whose top class has a margin around `confidence`: larger means lower entropy."""
    logits = torch.randn(n, k, generator=gen)
    logits[:, 0] += confidence + torch.randn(n, generator=gen)
    return logits


def test_membership_attacks_tell_members_from_non_members() -> None:
    gen = torch.Generator().manual_seed(0)
    retain, test = _logits(2000, 8.0, gen), _logits(1000, 2.0, gen)
    remembered = membership_inference(retain, test, _logits(300, 8.0, gen), seed=1)
    forgotten = membership_inference(retain, test, _logits(300, 2.0, gen), seed=1)
    assert remembered.reference_member_rate > 0.9 and remembered.forget_member_rate > 0.9
    assert remembered.gap > 0.5 and remembered.gap_ci[0] > 0.5
    assert forgotten.reference_member_rate < 0.3
    assert abs(forgotten.gap) < 0.1 and forgotten.gap_ci[0] < 0 < forgotten.gap_ci[1]
    assert forgotten.gap_ci[0] <= forgotten.gap <= forgotten.gap_ci[1]
    # The held-out half is the attack's false-positive rate: the same in both runs.
    assert remembered.holdout_member_rate == forgotten.holdout_member_rate
    assert remembered.num_fit == 500 and remembered.features == "entropy"
    again = membership_inference(retain, test, _logits(300, 8.0, torch.Generator().manual_seed(99)), seed=1)
    assert again.holdout_member_rate == remembered.holdout_member_rate  # seeded


def test_the_loss_feature_is_used_when_labels_exist() -> None:
    gen = torch.Generator().manual_seed(0)
    # Same entropy for everyone; only the loss (is the confident class the label?) separates them.
    retain, test, forget = (_logits(n, 6.0, gen) for n in (1000, 600, 200))
    zeros = [torch.zeros(len(t), dtype=torch.int64) for t in (retain, forget)]
    wrong = torch.randint(1, 10, (len(test),), generator=gen)
    plain = membership_inference(retain, test, forget, seed=0)
    with_loss = membership_inference(retain, test, forget, seed=0, labels=(zeros[0], wrong, zeros[1]))
    assert with_loss.features == "entropy+loss"
    assert abs(plain.gap) < 0.15 < with_loss.gap


def test_constant_outputs_flag_nobody_as_member() -> None:
    features = np.zeros((50, 1))
    result = calibrated_gap(features, features, features[:10], seed=0)
    assert (result.forget_member_rate, result.holdout_member_rate, result.gap) == (0.0, 0.0, 0.0)


def test_a_model_that_outputs_nan_is_refused_by_the_forward_pass() -> None:
    from lethe.evaluation import predict_logits

    model = torch.nn.Linear(4, 3)
    with torch.no_grad():
        model.bias[1] = float("nan")
    with pytest.raises(EvaluationError, match="NaN or Inf"):
        predict_logits(model, [torch.zeros(2, 4)], progress=False, what="candidate")
