"""The feature probe: a class silenced at the output layer is still found in the features."""

from __future__ import annotations

import pytest
import torch

from lethe.errors import EvaluationError
from lethe.evaluation import feature_probe, penultimate_features
from lethe.models.training import model_accuracy

FORGOTTEN = 4


def _silence_logit(model: torch.nn.Module, label: int) -> None:
    """The false pass: the class's output row zeroed and its bias sunk, every feature left as it was."""
    output = model.classifier[-1]
    with torch.no_grad():
        output.weight[label] = 0.0
        output.bias[label] = -1e4


def test_a_silenced_logit_forgets_on_accuracy_but_not_in_the_features(digits_convnet, digits_train,
                                                                      digits_test) -> None:
    model, _ = digits_convnet
    before = feature_probe(model, digits_train, digits_test, FORGOTTEN, device="cpu")
    assert before["layer"] == "output" and before["features"] == model.classifier[-1].in_features
    assert before["forgotten_class_test_samples"] == int((digits_test.labels == FORGOTTEN).sum())
    assert before["forgotten_class_accuracy"] >= 0.8 and before["accuracy"] >= 0.8

    _silence_logit(model, FORGOTTEN)
    forgotten_test = digits_test.subset((digits_test.labels == FORGOTTEN).nonzero().flatten())
    assert model_accuracy(model, forgotten_test, device="cpu") == 0.0  # "forgotten" on accuracy
    after = feature_probe(model, digits_train, digits_test, FORGOTTEN, device="cpu")
    assert after == before  # the probe sees the same features: the class is still there

    # The probe reads the model's features, not the images: with the hidden layer blanked every
    # image has the same features, and the probe can only guess one class.
    features, _ = penultimate_features(model, digits_test, device="cpu")
    assert features.shape == (len(digits_test), before["features"])
    with torch.no_grad():
        model.classifier[1].weight.zero_()
    blind = feature_probe(model, digits_train, digits_test, FORGOTTEN, device="cpu")
    assert blind["accuracy"] < 0.2

def test_the_probe_needs_the_forgotten_class_in_its_training_sample(digits_convnet, digits_train,
                                                                    digits_test) -> None:
    model, _ = digits_convnet
    without = digits_train.subset((digits_train.labels != FORGOTTEN).nonzero().flatten())
    with pytest.raises(EvaluationError, match="no image of class 4"):
        feature_probe(model, without, digits_test, FORGOTTEN, device="cpu")
    result = feature_probe(model, without, digits_test, None, device="cpu")
    share = float((digits_test.labels == FORGOTTEN).float().mean())
    # A probe that never saw class 4 cannot name it: those test images are all misses.
    assert result["forgotten_class_accuracy"] is None and 0.5 < result["accuracy"] <= 1 - share + 1e-9
