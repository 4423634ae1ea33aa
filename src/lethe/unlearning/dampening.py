"""Selective synaptic dampening (SSD, arXiv 2308.07707; label-free variant LFSSD, arXiv 2402.19308).

For every parameter element θ with full-data importance I_D and forget importance I_f:

    θ ← θ · min(λ·I_D / I_f, 1)   where I_f > α·I_D
    θ ← θ                          elsewhere
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from lethe.errors import ImportancesError
from lethe.unlearning.fingerprint import model_fingerprint
from lethe.unlearning.importances import Importances


@dataclass(frozen=True)
class DampeningReport:
    """What one dampening changed: selected (dampened) elements per tensor and in total."""

    alpha: float
    lam: float
    selected: dict[str, int] = field(default_factory=dict)
    elements: dict[str, int] = field(default_factory=dict)

    @property
    def total_selected(self) -> int:
        return sum(self.selected.values())

    @property
    def total_elements(self) -> int:
        return sum(self.elements.values())

    @property
    def fraction(self) -> float:
        return self.total_selected / max(self.total_elements, 1)

    def to_dict(self) -> dict:
        return {**asdict(self), "total_selected": self.total_selected,
                "total_elements": self.total_elements, "fraction": self.fraction}


def check_pair(model: nn.Module, full: Importances, forget: Importances) -> None:
    """Refuse importances that do not belong to this model or to each other."""
    full.check_compatible(forget)
    fingerprint = model_fingerprint(model)
    if full.model_fingerprint != fingerprint:
        raise ImportancesError(
            f"importances were computed for model {full.model_fingerprint[:12]}, "
            f"not for this model ({fingerprint[:12]})"
        )
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    if set(shapes) != set(full):
        raise ImportancesError("importances do not cover exactly the model's parameters")
    for name, shape in shapes.items():
        if tuple(full[name].shape) != shape:
            raise ImportancesError(f"importance shape of {name} is {tuple(full[name].shape)}, not {shape}")
    full.check_finite()
    forget.check_finite()


@torch.no_grad()
def dampen(
    model: nn.Module, full: Importances, forget: Importances, *, alpha: float, lam: float = 1.0
) -> DampeningReport:
    """Dampen, in place, the parameters that matter disproportionately to the forget set."""
    if not (alpha > 0 and lam > 0):
        raise ImportancesError(f"alpha and lambda must be positive (got alpha={alpha}, lambda={lam})")
    check_pair(model, full, forget)  # everything is validated before anything changes
    names, params = zip(*model.named_parameters(), strict=True)
    full_values = [full[n].to(p.device, p.dtype) for n, p in zip(names, params, strict=True)]
    forget_values = [forget[n].to(p.device, p.dtype) for n, p in zip(names, params, strict=True)]

    thresholds = torch._foreach_mul(full_values, alpha)                                  # α·I_D
    selected = [i_f > t for i_f, t in zip(forget_values, thresholds, strict=True)]      # I_f > α·I_D
    # I_f > 0 wherever selected, so the division is safe; elsewhere divide by 1 (value unused).
    denominators = [i_f.where(s, 1.0) for i_f, s in zip(forget_values, selected, strict=True)]
    ratios = torch._foreach_div(torch._foreach_mul(full_values, lam), denominators)     # λ·I_D/I_f
    torch._foreach_clamp_max_(ratios, 1.0)                                             # min(·, 1)
    # Unselected elements are multiplied by exactly 1.0, which leaves them bit-identical.
    factors = [torch.where(s, r, 1.0) for s, r in zip(selected, ratios, strict=True)]
    torch._foreach_mul_(list(params), factors)

    counts = torch.stack([s.sum() for s in selected]).tolist()
    return DampeningReport(
        alpha=float(alpha),
        lam=float(lam),
        selected=dict(zip(names, map(int, counts), strict=True)),
        elements={n: p.numel() for n, p in zip(names, params, strict=True)},
    )
