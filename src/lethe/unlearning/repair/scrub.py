"""SCRUB-style teacher and student, label-free: the parent teaches, the candidate learns to disagree
with it on the forget samples and to agree with it on the retain samples.

SCRUB (Kurmanji et al., arXiv 2302.09880) alternates "max-steps" (raise KL(teacher ‖ student) on the
forget set) and "min-steps" (lower it on the retain set, plus the retain labels' cross-entropy), the
max-steps only in the first part of training. Here the retain term is distillation alone, so neither
set's labels are read: the method works where a request's samples carry no trustworthy label. A forget
sample's divergence stops pulling above `KL_CAP` nats, so the student is pushed off the teacher's
memorised answer, not into nonsense.
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
MAX_STEPS_SHARE = 0.5  # the max-steps run in the first half of the budget, then min-steps alone
KL_CAP = 2.0
TEMPERATURE = 2.0


def divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(teacher ‖ student) at `TEMPERATURE`."""
    t = TEMPERATURE
    teacher = nn.functional.log_softmax(teacher_logits / t, dim=1)
    student = nn.functional.log_softmax(student_logits / t, dim=1)
    return (teacher.exp() * (teacher - student)).sum(dim=1) * t * t


def scrub(parent: nn.Module, candidate: nn.Module, data: RepairData, meter: BudgetMeter,
          settings: RepairSettings) -> dict[str, Any]:
    """Each step: a min-step on a retain batch; in the first `MAX_STEPS_SHARE` of the steps, a max-step
    on a forget batch too (both with AdamW, cosine decay)."""
    forget_batch = min(FORGET_BATCH, data.num_forget)
    # S steps cost S·retain + share·S·forget sample-steps.
    steps = max(1, int(meter.left / (RETAIN_BATCH + MAX_STEPS_SHARE * forget_batch)))
    max_steps = int(MAX_STEPS_SHARE * steps)
    optimizer = torch.optim.AdamW(candidate.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps)))
    retain = batches_of(data.retain, RETAIN_BATCH, settings.seed)
    forget = batches_of(data.forget, forget_batch, settings.seed + 1)
    candidate.train()
    last = {"retain_kl": None, "forget_kl": None}
    rounds = range(steps) if settings.progress is None else settings.progress(range(steps))
    for step in rounds:
        if step < max_steps:
            xf, _ = next(forget)
            meter.charge(len(xf))
            with torch.no_grad():
                taught = parent(xf)
            kl = divergence(candidate(xf), taught)
            loss = -torch.where(kl < KL_CAP, kl, kl.detach() * 0).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            last["forget_kl"] = float(kl.detach().mean())
        xr, _ = next(retain)
        meter.charge(len(xr))
        with torch.no_grad():
            taught = parent(xr)
        loss = divergence(candidate(xr), taught).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        last["retain_kl"] = float(loss.detach())
    return {"steps": steps, "max_steps": max_steps, "lr": LEARNING_RATE, "kl_cap": KL_CAP,
            "temperature": TEMPERATURE, "last_retain_kl": last["retain_kl"],
            "last_forget_kl": last["forget_kl"]}


SCRUB = RepairMethod(
    name="scrub", repair=scrub, needs_labels=False, default_share=0.1, addresses=("still_flagged",),
    reference="SCRUB (Kurmanji et al., arXiv 2302.09880), distillation-only min-steps",
    summary="the parent as teacher: disagree with it on the forget samples, agree on retain; no labels",
)
