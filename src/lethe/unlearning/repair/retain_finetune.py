"""Retain fine-tune: a few passes of gradient descent on retain samples only.

The baseline every unlearning benchmark carries (e.g. "fine-tune" in Kurmanji et al., SCRUB, arXiv
2302.09880; DeepUnlearn, arXiv 2410.01276). As a rung after dampening it repairs collateral damage: the
parameters dampening shrank for the retain set get their function back from retain data alone, and the
forget samples are never shown, so what was removed is not taught again.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from lethe.unlearning.repair.base import BudgetMeter, RepairData, RepairMethod, RepairSettings, batches_of

BATCH_SIZE = 128
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 0.0


def retain_finetune(parent: nn.Module, candidate: nn.Module, data: RepairData, meter: BudgetMeter,
                    settings: RepairSettings) -> dict[str, Any]:
    """AdamW with a cosine decay over the whole budget, on retain batches (cross-entropy)."""
    steps = max(1, meter.left // BATCH_SIZE)
    optimizer = torch.optim.AdamW(candidate.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    candidate.train()
    losses = []
    batches = batches_of(data.retain, BATCH_SIZE, settings.seed)
    rounds = range(steps) if settings.progress is None else settings.progress(range(steps))
    for _ in rounds:
        x, y = next(batches)
        meter.charge(len(y))
        loss = nn.functional.cross_entropy(candidate(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    return {"steps": len(losses), "batch_size": BATCH_SIZE, "lr": LEARNING_RATE,
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None}


RETAIN_FINETUNE = RepairMethod(
    name="retain_finetune", repair=retain_finetune, needs_labels=True, default_share=0.1,
    addresses=("accuracy_drop",),
    reference="fine-tuning on the retain set (the baseline of SCRUB, arXiv 2302.09880, and DeepUnlearn, "
              "arXiv 2410.01276)",
    summary="gradient descent on retain samples only: repairs what dampening cost the rest",
)
