"""Damage then repair, in the spirit of DeepUnlearn's best methods (arXiv 2410.01276: re-initialise or
perturb the weights that matter least to the retain set, then fine-tune briefly on retain data).

Damage: each weight's importance to the forget samples and to the retain samples is its mean squared
gradient of the cross-entropy (a diagonal Fisher, as SSD, arXiv 2308.07707, measures it); the
`DAMAGE_SHARE` of the elements with the largest forget-to-retain ratio are re-drawn as noise of their
tensor's own spread (the forget samples' evidence in them is gone, the retain set barely needed them).
Repair: the rest of the budget is a retain fine-tune (`retain_finetune`), which never shows the forget
samples, so what the damage removed is not taught again. Needs labels: both sets' (the gradients and
the fine-tune).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lethe.unlearning.repair.base import BudgetMeter, RepairData, RepairMethod, RepairSettings
from lethe.unlearning.repair.retain_finetune import retain_finetune

DAMAGE_SHARE = 0.02  # of every weight tensor's elements
IMPORTANCE_BATCH = 64
RETAIN_IMPORTANCE_SAMPLES = 2_048  # retain samples the retain importance is measured on (at most)


def squared_gradients(model: nn.Module, source: Any, samples: int, meter: BudgetMeter,
                      seed: int) -> dict[str, torch.Tensor]:
    """Mean squared gradient per weight element over up to `samples` samples of `source`."""
    named = {n: p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1}
    totals = {n: torch.zeros_like(p) for n, p in named.items()}
    seen = 0
    for x, y in source(IMPORTANCE_BATCH, seed):
        if seen >= samples:
            break
        meter.charge(len(y))
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        for n, p in named.items():
            if p.grad is not None:
                totals[n] += p.grad.detach() ** 2 * len(y)
        seen += len(y)
    return {n: t / max(seen, 1) for n, t in totals.items()}


def damage_repair(parent: nn.Module, candidate: nn.Module, data: RepairData, meter: BudgetMeter,
                  settings: RepairSettings) -> dict[str, Any]:
    """Re-draw the weights most particular to the forget samples, then fine-tune on retain."""
    generator = torch.Generator().manual_seed(settings.seed)
    candidate.eval()  # importances without dropout's noise; the fine-tune sets train mode
    forget = squared_gradients(candidate, data.forget, data.num_forget, meter, settings.seed)
    retain = squared_gradients(candidate, data.retain, RETAIN_IMPORTANCE_SAMPLES, meter, settings.seed + 1)
    damaged = 0
    with torch.no_grad():
        for name, param in candidate.named_parameters():
            if name not in forget:
                continue
            ratio = forget[name] / (retain[name] + 1e-12)
            count = max(1, int(DAMAGE_SHARE * ratio.numel()))
            chosen = ratio.flatten().topk(count).indices
            spread = float(param.std()) if param.numel() > 1 else 0.0
            noise = torch.randn(count, generator=generator).to(param.device, param.dtype) * spread
            param.view(-1)[chosen] = noise
            damaged += count
    details = retain_finetune(parent, candidate, data, meter, settings) if meter.left > 0 else {}
    return {"damaged_elements": damaged, "damage_share": DAMAGE_SHARE, "finetune": details}


DAMAGE_REPAIR = RepairMethod(
    name="damage_repair", repair=damage_repair, needs_labels=True, default_share=0.1,
    addresses=("still_flagged", "accuracy_drop"),
    reference="damage then repair (DeepUnlearn, arXiv 2410.01276); importances as SSD's (arXiv 2308.07707)",
    summary="re-draw the weights most particular to the forget samples, then fine-tune on retain",
)
