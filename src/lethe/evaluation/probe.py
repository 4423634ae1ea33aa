"""A linear probe on a model's penultimate features: is a forgotten class gone below the output layer?

A candidate can meet "forget accuracy ≤ 5%" by silencing one logit while its features still separate
the class: a false pass that accuracy alone cannot see. The probe refits the last layer's job: a
logistic regression on the features that feed the last stage (`lethe.models.forward_stages`),
trained on a training sample that includes the forgotten class, then scored on held-out images of
that class. A model retrained without the class sets the level to reach; the original model, which
learned the class, sets the level a false pass stays at.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from lethe.data import SampleSet
from lethe.errors import EvaluationError
from lethe.evaluation.evaluator import DEFAULT_BATCH_SIZE
from lethe.evaluation.forward import forward_batches
from lethe.models.stages import forward_stages

#: lbfgs iterations: enough for standardised features of a few thousand samples to converge.
PROBE_MAX_ITER = 1000


def penultimate_features(model: nn.Module, samples: SampleSet, *, device: str | torch.device | None = None,
                         batch_size: int = DEFAULT_BATCH_SIZE) -> tuple[torch.Tensor, str]:
    """[N, F] inputs of the model's last stage (flattened) on `samples`, and that stage's name.

    A model of one stage (unknown architecture) has no features below its output: its input is
    returned (the probe then measures the data, not the model)."""
    stages = forward_stages(model)
    prefix = nn.Sequential(*(module for _, module in stages[:-1]))
    outputs = forward_batches(prefix, samples.batches(batch_size, with_labels=False), device=device)
    features = torch.cat([output.float().flatten(1).cpu() for output in outputs]) if outputs else \
        torch.empty(0, 0)
    return features, stages[-1][0]


def feature_probe(model: nn.Module, train: SampleSet, test: SampleSet, forgotten_class: int | None, *,
                  device: str | torch.device | None = None) -> dict[str, Any]:
    """Fit a linear probe on `train`'s penultimate features; score it on `test`.

    `train` must hold labelled samples of every class the probe should know, the forgotten one
    included (a retain sample plus a sample of the forget set). Returns the probe's accuracy on
    `test` (`accuracy`) and on `test`'s images of `forgotten_class` (`forgotten_class_accuracy`, None
    when no class is given), with the sample counts and the layer probed.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    if train.labels is None or test.labels is None:
        raise EvaluationError("the feature probe needs labelled training and test samples")
    if forgotten_class is not None and not bool((train.labels == forgotten_class).any()):
        raise EvaluationError(f"the probe's training sample holds no image of class {forgotten_class}: "
                              "it could not learn the class it is meant to find")
    if len(torch.unique(train.labels)) < 2:
        raise EvaluationError("the probe's training sample needs at least two classes")
    train_x, layer = penultimate_features(model, train, device=device)
    test_x, _ = penultimate_features(model, test, device=device)
    # Standardised features keep lbfgs well conditioned; lbfgs is deterministic, so is the probe.
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=PROBE_MAX_ITER))
    # One BLAS thread: a fit this small gains nothing from more, and on a busy 2-core machine they
    # made it 4-30× slower (measured: 0.4 s against up to 13 s for 3,000 samples of 128 features).
    with threadpool_limits(limits=1):
        probe.fit(train_x.double().numpy(), train.labels.numpy())
        predicted = probe.predict(test_x.double().numpy())
    labels = test.labels.numpy()
    result: dict[str, Any] = {
        "layer": layer,
        "features": int(train_x.shape[1]),
        "train_samples": len(train),
        "test_samples": len(test),
        "accuracy": float(np.mean(predicted == labels)),
        "forgotten_class": forgotten_class,
        "forgotten_class_accuracy": None,
        "forgotten_class_test_samples": 0,
    }
    if forgotten_class is not None:
        mask = labels == forgotten_class
        result["forgotten_class_test_samples"] = int(mask.sum())
        if mask.any():
            result["forgotten_class_accuracy"] = float(np.mean(predicted[mask] == forgotten_class))
    return result
