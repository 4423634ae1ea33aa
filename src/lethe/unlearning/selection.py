"""Choosing the dampening's configuration per request: where it may act (a cut-off) and how much (α).

For a model split into stages s_1 … s_m (`lethe.models.forward_stages`) and a cut-off k:

    θ ← θ·min(λ·I_D/I_f, 1)   where I_f > α·I_D, for θ in s_k … s_m
    θ ← θ                      elsewhere (and everywhere in s_1 … s_{k−1})

k = 1 is "every layer", LFSSD as published. For each cut-off, bisection on log α finds the largest
α (the least dampening) whose candidate meets the forgetting target; among the cut-offs that meet
it, the one with the highest retained agreement wins. Measured on Fashion-MNIST (DESIGN.md): where
the dampening may act changes the accuracy cost per class by up to 10 points, and no fixed choice
wins for every class, hence a search per request.

Forward passes only: the stages before the cut are never changed, so their outputs on the target's
fixed samples are computed once per cut-off (`target.after(prefix)`) and a trial runs only the
stages after it. λ stays as given (1 by default): λ < 1 only added damage in every measurement.

Fewer forward passes, the same choice. The selected set {I_f > α·I_D} shrinks as α grows (importances
are non-negative), so its size names it, and the factors min(λ·I_D/I_f, 1) do not depend on α: two
α that select as many elements give the same candidate, and the second is answered from the first's
measurement without a forward pass (the bisection asks for the same α values as before, so it ends on
the same α). Nothing selected is the original model, measured once for every cut-off. Trials ask the
target for a decision (`measure(..., decided_only=True)`): a target may then leave out what only a
met candidate needs (the class target's retain agreement; see `lethe.evaluation.targets`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from lethe.errors import ImportancesError
from lethe.unlearning.calibration import bisect_log_alpha
from lethe.unlearning.dampening import check_factors, check_pair, dampening_factors
from lethe.unlearning.importances import Importances

#: The cut-off that lets dampening act on every layer.
EVERY_LAYER = "all"


class Measurement(Protocol):
    met: bool
    value: float
    retain_agreement: float | None  # None: not measured (a missed trial that asked for the decision only)
    forget_agreement: float


class SelectionTarget(Protocol):
    """What the selection needs of a forgetting target (see `lethe.evaluation.targets`)."""

    def measure(self, candidate: nn.Module, *, decided_only: bool = False) -> Measurement: ...

    def after(self, prefix: nn.Module) -> SelectionTarget:
        """The same target over the prefix's outputs: it then measures the stages after the cut."""
        ...


@dataclass(frozen=True)
class SelectionTrial:
    cutoff: str
    alpha: float
    met: bool
    value: float
    retain_agreement: float | None  # None on a missed trial whose target decided without it
    forget_agreement: float
    fraction_dampened: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Selection:
    """The chosen configuration (or None when no trial met the target) and every trial on the way."""

    cutoff: str | None
    alpha: float | None
    parameters: tuple[str, ...] = ()
    trials: list[SelectionTrial] = field(default_factory=list)
    cutoffs: tuple[str, ...] = ()
    forward_trials: int = 0  # trials that ran a forward pass (the others selected a set already measured)

    @property
    def found(self) -> bool:
        return self.alpha is not None

    @property
    def chosen_trial(self) -> SelectionTrial | None:
        matches = [t for t in self.trials if t.cutoff == self.cutoff and t.alpha == self.alpha and t.met]
        return matches[-1] if matches else None


Stages = Sequence[tuple[str, nn.Module]]


def cutoff_names(stages: Stages) -> list[str]:
    """`all`, then one cut-off per stage boundary, named by the first stage dampening may touch."""
    return [EVERY_LAYER, *(name for name, _ in list(stages)[1:])]


def eligible_parameters(model: nn.Module, modules: Sequence[nn.Module]) -> list[str]:
    """The names of `model`'s parameters that belong to `modules` (where dampening may act)."""
    owned = {id(p) for module in modules for p in module.parameters()}
    return [name for name, p in model.named_parameters() if id(p) in owned]


@torch.no_grad()
def select_dampening(
    model: nn.Module,
    full: Importances,
    forget: Importances,
    target: SelectionTarget,
    *,
    stages: Callable[[nn.Module], Stages] | None = None,
    cutoffs: Sequence[str] | None = None,
    alpha: float | None = None,
    lam: float = 1.0,
    low: float = 1.0,
    high: float = 1000.0,
    steps: int = 12,
) -> Selection:
    """Search the cut-off and α (or only the cut-off, for a given `alpha`) for the least costly forgetting.

    `stages(model)` splits a model into `(name, module)` stages whose composition is its forward pass
    (default: one stage, i.e. every layer); `cutoffs` restricts the cut-offs tried (names from
    `cutoff_names`). The target is assumed monotone in α (met below some α*, missed above). The model
    itself is never changed: trials dampen a working copy, restored between cut-offs.
    """
    check_factors(alpha if alpha is not None else 1.0, lam)
    if alpha is None and not 0 < low < high:
        raise ImportancesError(f"need 0 < low < high (got {low}, {high})")
    check_pair(model, full, forget)
    working = copy.deepcopy(model)
    stage_list = list(stages(working)) if stages is not None else [("model", working)]
    names = cutoff_names(stage_list)
    wanted = list(names) if cutoffs is None else list(dict.fromkeys(cutoffs))
    unknown = [c for c in wanted if c not in names]
    if unknown or not wanted:
        raise ImportancesError(f"unknown cut-off {unknown[0] if unknown else '(none)'!r}; "
                               f"this model has {', '.join(names)}")
    named = dict(working.named_parameters())
    total_elements = sum(p.numel() for p in named.values())
    trials: list[SelectionTrial] = []
    # Measurements by cut-off and number of selected elements (0: the original model, any cut-off).
    measured: dict[tuple[str, int], Measurement] = {}
    forward_trials = [0]
    best: tuple[float, str, float, list[str]] | None = None  # (retain agreement, cut-off, α, parameters)

    for cutoff in wanted:
        k = names.index(cutoff)
        suffix = nn.Sequential(*(module for _, module in stage_list[k:]))
        view = target.after(nn.Sequential(*(module for _, module in stage_list[:k]))) if k else target
        eligible = eligible_parameters(working, [suffix])
        params = [named[n] for n in eligible]
        originals = [p.detach().clone() for p in params]
        full_values = [full[n].to(p.device, p.dtype) for n, p in zip(eligible, params, strict=True)]
        forget_values = [forget[n].to(p.device, p.dtype) for n, p in zip(eligible, params, strict=True)]
        # Nested selections (hence "a count names a set") need I_D ≥ 0; a method that could give
        # negative importances measures every trial.
        nested = all(bool((v >= 0).all()) for v in full_values)
        found: dict[float, SelectionTrial] = {}

        def trial(value: float, cutoff: str = cutoff, params: list = params, originals: list = originals,
                  full_values: list = full_values, forget_values: list = forget_values,
                  suffix: nn.Module = suffix, view: SelectionTarget = view,
                  found: dict = found, nested: bool = nested) -> bool:
            factors, selected = dampening_factors(full_values, forget_values, alpha=value, lam=lam)
            count = int(torch.stack([s.sum() for s in selected]).sum()) if selected else 0
            key = ("", 0) if count == 0 else (cutoff, count)
            measurement = measured.get(key) if nested else None
            if measurement is None:
                torch._foreach_copy_(params, torch._foreach_mul(originals, factors))
                measurement = view.measure(suffix, decided_only=True)
                measured[key] = measurement
                forward_trials[0] += 1
            retained = measurement.retain_agreement
            record = SelectionTrial(cutoff, float(value), bool(measurement.met), float(measurement.value),
                                    None if retained is None else float(retained),
                                    float(measurement.forget_agreement), count / max(total_elements, 1))
            trials.append(record)
            if record.met:
                found[record.alpha] = record
            return record.met

        try:
            if alpha is None:
                chosen = bisect_log_alpha(trial, low, high, steps)
            else:
                chosen = alpha if trial(alpha) else None
        finally:
            torch._foreach_copy_(params, originals)
        if chosen is not None:
            retained = found[float(chosen)].retain_agreement
            assert retained is not None  # a met trial always measures it
            if best is None or retained > best[0]:
                best = (retained, cutoff, float(chosen), eligible)

    if best is None:
        return Selection(None, None, (), trials, tuple(wanted), forward_trials[0])
    _, cutoff, value, eligible = best
    return Selection(cutoff, value, tuple(eligible), trials, tuple(wanted), forward_trials[0])

