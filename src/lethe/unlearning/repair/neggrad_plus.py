"""NegGrad+: gradient ascent on the forget samples and descent on the retain samples, in one loss.

Kurmanji et al. ("Towards Unbounded Machine Unlearning", arXiv 2302.09880) define it as the baseline a
label-aware method must beat; DeepUnlearn (arXiv 2410.01276) finds a tuned NegGrad+ near the top. The
loss is β·CE(retain) − (1 − β)·CE(forget). Unbounded ascent wrecks the forget samples (a loss far above
a retrained model's is a signature of its own), so each forget sample's loss stops pulling once it
exceeds `ASCENT_CAP` × log(classes): the loss of a uniform guess, about where a model that never saw a
wrong label leaves it. Needs labels: the forget samples' labels (what was memorised) and the retain's.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from lethe.unlearning.repair.base import BudgetMeter, RepairData, RepairMethod, RepairSettings, batches_of

RETAIN_BATCH = 128
FORGET_BATCH = 32
LEARNING_RATE = 5e-4
RETAIN_WEIGHT = 0.7  # β
ASCENT_CAP = 1.0  # × log(classes): a forget sample's loss above this no longer pulls


def capped_ascent(logits: torch.Tensor, labels: torch.Tensor, cap: float) -> torch.Tensor:
    """The mean forget loss over the samples still below `cap` (the others contribute no gradient)."""
    losses = nn.functional.cross_entropy(logits, labels, reduction="none")
    return torch.where(losses < cap, losses, losses.detach() * 0).mean()


def neggrad_plus(parent: nn.Module, candidate: nn.Module, data: RepairData, meter: BudgetMeter,
                 settings: RepairSettings) -> dict[str, Any]:
    """AdamW on β·CE(retain) − (1 − β)·capped CE(forget), one batch of each per step, cosine decay."""
    steps = max(1, meter.left // (RETAIN_BATCH + min(FORGET_BATCH, data.num_forget)))
    cap = ASCENT_CAP * math.log(max(2, data.num_classes))
    optimizer = torch.optim.AdamW(candidate.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    retain = batches_of(data.retain, RETAIN_BATCH, settings.seed)
    forget = batches_of(data.forget, FORGET_BATCH, settings.seed + 1)
    candidate.train()
    history = []
    rounds = range(steps) if settings.progress is None else settings.progress(range(steps))
    for _ in rounds:
        (xr, yr), (xf, yf) = next(retain), next(forget)
        meter.charge(len(yr) + len(yf))
        retain_loss = nn.functional.cross_entropy(candidate(xr), yr)
        ascent = capped_ascent(candidate(xf), yf, cap)
        loss = RETAIN_WEIGHT * retain_loss - (1 - RETAIN_WEIGHT) * ascent
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        history.append((float(retain_loss.detach()), float(ascent.detach())))
    return {"steps": len(history), "lr": LEARNING_RATE, "retain_weight": RETAIN_WEIGHT, "ascent_cap": cap,
            "last_retain_loss": history[-1][0] if history else None,
            "last_forget_loss": history[-1][1] if history else None}


NEGGRAD_PLUS = RepairMethod(
    name="neggrad_plus", repair=neggrad_plus, needs_labels=True, default_share=0.1,
    addresses=("still_flagged",),
    reference="NegGrad+ (Kurmanji et al., arXiv 2302.09880; DeepUnlearn, arXiv 2410.01276)",
    summary="ascent on the forget samples' labels (capped at a uniform guess's loss), descent on retain",
)
