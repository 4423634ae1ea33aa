"""LFSSD: label-free, MAS-style importances (Foster, Schoepf & Brintrup, arXiv 2402.19308).

Per batch g = ∇θ mean_x ||f(x)||²₂ over the raw logits; accumulate |g|. No labels needed.
"""

from __future__ import annotations

import torch

from lethe.unlearning.methods.base import ABSOLUTE, ImportanceMethod


def squared_logit_norm(outputs: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """Batch mean of ||f(x)||²₂; the labels are not used."""
    return outputs.pow(2).sum(dim=1).mean()


LFSSD = ImportanceMethod(
    name="lfssd", objective=squared_logit_norm, term=ABSOLUTE, needs_labels=False,
    reference="Foster, Schoepf & Brintrup, Loss-Free Machine Unlearning, arXiv 2402.19308",
    summary="label-free: |∇ mean ||f(x)||²|",
)
