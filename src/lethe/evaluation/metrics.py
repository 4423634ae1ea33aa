"""Per-sample quantities from model outputs, and the sample-weighted summaries built on them.

Everything here works on logits already computed (see `lethe.evaluation.forward`), so the
same forward pass serves accuracy, agreement and membership inference.
"""

from __future__ import annotations

import torch

from lethe.errors import EvaluationError


def check_logits(logits: torch.Tensor, *, what: str = "model") -> None:
    """Refuse outputs that are not a finite [N, K] matrix: every metric on them would be noise."""
    if logits.ndim != 2:
        raise EvaluationError(f"{what} outputs have shape {tuple(logits.shape)}, expected [samples, classes]")
    finite = torch.isfinite(logits).all(dim=1)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise EvaluationError(f"{what} outputs NaN or Inf for {bad} of {len(logits)} samples")


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> float:
    if values.numel() == 0:
        return float("nan")
    if weights is None:
        return float(values.double().mean())
    weights = weights.double()
    if weights.shape != values.shape or bool((weights < 0).any()) or float(weights.sum()) <= 0:
        raise EvaluationError("sample weights must be non-negative, one per sample, and not all zero")
    return float((values.double() * weights).sum() / weights.sum())


def accuracy(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> float:
    """Share of samples whose arg-max class is the label (weighted per sample); NaN when empty."""
    if len(logits) != len(labels):
        raise EvaluationError(f"{len(logits)} outputs but {len(labels)} labels")
    return _weighted_mean((logits.argmax(dim=1) == labels).float(), weights)


def agreement(logits: torch.Tensor, reference_logits: torch.Tensor,
              weights: torch.Tensor | None = None) -> float:
    """Share of samples on which two models predict the same class (labels not needed)."""
    if logits.shape != reference_logits.shape:
        raise EvaluationError(f"cannot compare outputs of shapes {tuple(logits.shape)} and "
                              f"{tuple(reference_logits.shape)}")
    return _weighted_mean((logits.argmax(dim=1) == reference_logits.argmax(dim=1)).float(), weights)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of each sample's softmax, computed stably from the logits."""
    log_probs = torch.log_softmax(logits.double(), dim=1)
    return -(log_probs.exp() * log_probs).sum(dim=1).float()


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy loss (the label-aware membership feature)."""
    return torch.nn.functional.cross_entropy(logits.double(), labels, reduction="none").float()
