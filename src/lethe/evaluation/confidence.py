"""A model's confidence in a label, and shares with intervals: the quantities both membership tests
(per sample, `per_example`; per person, `per_person`) are built from."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from lethe.errors import EvaluationError

Z_95 = 1.959963984540054


def logit_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """φ = log p_y − log(1 − p_y) = z_y − logsumexp(z_k, k ≠ y), over the last axis; float64.

    Stable where p_y rounds to 1 (a memorised sample): no softmax is ever formed."""
    z = logits.double()
    labels = labels.to(torch.int64).expand(z.shape[:-1]).unsqueeze(-1)
    own = z.gather(-1, labels).squeeze(-1)
    others = z.scatter(-1, labels, float("-inf"))
    return own - torch.logsumexp(others, dim=-1)


def pooled_variance(reference_phi: torch.Tensor, out_mask: torch.Tensor) -> float:
    """Variance of φ over the out models, pooled over samples ([K, n] each): Σ (φ − mean_i)² / Σ (n_i − 1)."""
    out = out_mask.to(torch.bool)
    counts = out.sum(dim=0)
    means = torch.where(out, reference_phi, 0.0).sum(dim=0) / counts.clamp(min=1)
    squares = torch.where(out, (reference_phi - means) ** 2, 0.0).sum(dim=0)
    dof = (counts - 1).clamp(min=0)
    if int(dof.sum()) == 0:
        raise EvaluationError("the reference models leave no sample out twice: no variance to pool")
    return float(squares[dof > 0].sum() / dof.sum())


@dataclass(frozen=True)
class Share:
    """`flagged` of `n` samples scored above the threshold; 95% Wilson interval of the share."""

    flagged: int
    n: int
    share: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial share (sound at 0 and n successes, unlike a bootstrap)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
