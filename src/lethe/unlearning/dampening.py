"""Selective synaptic dampening (SSD, arXiv 2308.07707; label-free variant LFSSD, arXiv 2402.19308).

For every parameter element θ with full-data importance I_D and forget importance I_f:

    θ ← θ · min(λ·I_D / I_f, 1)   where I_f > α·I_D
    θ ← θ                          elsewhere
"""

from __future__ import annotations

import math
from collections.abc import Collection
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


def dampening_factors(
    full_values: list[torch.Tensor], forget_values: list[torch.Tensor], *, alpha: float, lam: float
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per-element factors min(λ·I_D/I_f, 1) where I_f > α·I_D, else exactly 1; and the selection masks."""
    thresholds = torch._foreach_mul(full_values, alpha)                                  # α·I_D
    selected = [i_f > t for i_f, t in zip(forget_values, thresholds, strict=True)]      # I_f > α·I_D
    del thresholds
    # Computed in place on one new tensor per parameter. I_f > 0 wherever selected; elsewhere the
    # quotient (maybe 0/0) is overwritten below, before anyone reads it.
    factors = torch._foreach_mul(full_values, lam)
    torch._foreach_div_(factors, forget_values)                                          # λ·I_D/I_f
    torch._foreach_clamp_max_(factors, 1.0)                                              # min(·, 1)
    # Unselected elements are multiplied by exactly 1.0, which leaves them bit-identical.
    for factor, chosen in zip(factors, selected, strict=True):
        factor.masked_fill_(chosen.logical_not(), 1.0)
    return factors, selected


def check_factors(alpha: float, lam: float) -> None:
    if not (alpha > 0 and lam > 0 and math.isfinite(alpha) and math.isfinite(lam)):
        raise ImportancesError(f"alpha and lambda must be positive and finite "
                               f"(got alpha={alpha}, lambda={lam})")


@torch.no_grad()
def dampen(
    model: nn.Module, full: Importances, forget: Importances, *, alpha: float, lam: float = 1.0,
    parameters: Collection[str] | None = None,
) -> DampeningReport:
    """Dampen, in place, the parameters that matter disproportionately to the forget set.

    `parameters` restricts where dampening may act (names of `named_parameters()`); default: all.
    """
    check_factors(alpha, lam)
    check_pair(model, full, forget)  # everything is validated before anything changes
    named = dict(model.named_parameters())
    if parameters is not None:
        unknown = sorted(set(parameters) - set(named))
        if unknown:
            raise ImportancesError(f"no parameter {unknown[0]!r} in the model to dampen")
    eligible = [n for n in named if parameters is None or n in parameters]
    params = [named[n] for n in eligible]
    full_values = [full[n].to(p.device, p.dtype) for n, p in zip(eligible, params, strict=True)]
    forget_values = [forget[n].to(p.device, p.dtype) for n, p in zip(eligible, params, strict=True)]
    factors, selected = dampening_factors(full_values, forget_values, alpha=alpha, lam=lam)
    if params:
        torch._foreach_mul_(params, factors)

    counts = dict(zip(eligible, map(int, torch.stack([s.sum() for s in selected]).tolist()), strict=True)) \
        if selected else {}
    return DampeningReport(
        alpha=float(alpha),
        lam=float(lam),
        selected={n: counts.get(n, 0) for n in named},
        elements={n: p.numel() for n, p in named.items()},
    )
