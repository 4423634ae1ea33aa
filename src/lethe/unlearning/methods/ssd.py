"""SSD: the Fisher information diagonal (Foster, Schoepf & Brintrup, arXiv 2308.07707).

Per batch g = ∇θ mean CE(f(x), y); accumulate g². Needs labels.
"""

from __future__ import annotations

import torch
from torch import nn

from lethe.errors import ImportancesError
from lethe.unlearning.methods.base import SQUARE, ImportanceMethod


def cross_entropy(outputs: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    if labels is None:
        raise ImportancesError("SSD importances need labels: batches must be (inputs, labels)")
    return nn.functional.cross_entropy(outputs, labels)


SSD = ImportanceMethod(
    name="ssd", objective=cross_entropy, term=SQUARE, needs_labels=True,
    reference="Foster, Schoepf & Brintrup, Fast Machine Unlearning Without Retraining Through "
              "Selective Synaptic Dampening, arXiv 2308.07707",
    summary="Fisher diagonal: (∇ mean CE(f(x), y))²",
)
