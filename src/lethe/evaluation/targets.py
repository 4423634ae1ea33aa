"""Forgetting targets for the α search: is this dampened copy forgotten enough?

Each target is a callable `target(candidate_model) -> bool` for `lethe.unlearning.select_dampening`; a
scenario's row names its target (`TARGETS`), and the target's limit is the gate's limit of the check it
stands for (`gate_check`) in the scenario's thresholds section: one set of limits for search and gate.
It needs forward passes only (no labels, no backward) over the forget samples and small fixed
samples of retained and held-out inputs, and records what each trial measured (including the
retain agreement the dampening costs), so the search can be reported.

- `forgotten_class_share` (class): the candidate predicts the forgotten class on at most the gate's
  `class.forget_accuracy_max` of the forget samples: the gate's forget accuracy, which needs no
  per-sample label (every forget sample is of that class). Without the class index, agreement with
  the original's predictions stands in for it; that is stricter on classes the original confuses
  (Fashion-MNIST's pullover, coat and shirt: a candidate that keeps the original's mistakes "agrees"
  on them), so the class is passed whenever known.
- `member_rate_gap` (subject): the forget samples' entropy no longer separates them from held-out
  inputs: the calibrated membership attack, fit afresh on each trial's own outputs (the candidate's
  retain sample as members against one half of its held-out sample), flags forget samples as
  members no more often than the other held-out half (gap ≤ `subject.member_rate_gap_max`). Fitting
  on the original model's outputs instead would test the wrong model: dampening shifts every entropy.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from lethe.errors import EvaluationError
from lethe.evaluation.forward import forward_batches, predict_logits
from lethe.evaluation.metrics import agreement
from lethe.evaluation.mia import calibrated_gap, membership_features
from lethe.evaluation.thresholds import load_thresholds


@dataclass
class TargetMeasurement:
    """What one α trial measured; `value` is compared with `limit` (met when value <= limit)."""

    criterion: str
    value: float
    limit: float
    met: bool
    retain_agreement: float | None  # None: a missed candidate measured for the decision only
    forget_agreement: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ForgettingTarget:
    """Base: forward passes of the original model once; each call measures one candidate."""

    criterion = ""
    #: The gate check this target stands for: its limit is that check's (`Thresholds.limit`).
    gate_check: ClassVar[str] = ""

    def __init__(self, original: nn.Module, forget: Iterable[Any], retain: Iterable[Any], *,
                 limit: float, device: str | torch.device | None = None) -> None:
        self.forget, self.retain, self.limit, self.device = forget, retain, float(limit), device
        self.original_forget = self._logits(original, forget)
        self.original_retain = self._logits(original, retain)
        if len(self.original_forget) == 0:
            raise EvaluationError("the forgetting target needs at least one forget sample")
        self.measurements: list[TargetMeasurement] = []

    def _logits(self, model: nn.Module, batches: Iterable[Any]) -> torch.Tensor:
        return predict_logits(model, batches, device=self.device, progress=False, what="model")

    def measure(self, candidate: nn.Module, *, decided_only: bool = False) -> TargetMeasurement:
        """`decided_only`: the search asks only whether the candidate meets the target; what only a met
        candidate needs (its retain agreement) may then be left out of a missed one."""
        raise NotImplementedError

    @classmethod
    def for_scenario(cls, original: nn.Module, *, forget: Iterable[Any], retain: Iterable[Any],
                     held_out: Iterable[Any] | None, forget_class: int | None, limit: float, seed: int,
                     device: str | torch.device | None) -> ForgettingTarget:
        """The one constructor the steps call for every row (`held_out` only when `inputs` names it)."""
        raise NotImplementedError

    #: The attributes that hold the fixed samples' batches.
    inputs: tuple[str, ...] = ("forget", "retain")

    def after(self, prefix: nn.Module) -> ForgettingTarget:
        """This target over `prefix`'s outputs on the same samples, against the same original logits:
        it then measures a candidate made of the stages after the cut (the selection's prefix cache)."""
        view = copy.copy(self)
        view.measurements = []
        for name in self.inputs:
            setattr(view, name, forward_batches(prefix, getattr(self, name), device=self.device))
        return view

    def __call__(self, candidate: nn.Module) -> bool:
        measurement = self.measure(candidate)
        self.measurements.append(measurement)
        return measurement.met


class ClassTarget(ForgettingTarget):
    """Met when the candidate predicts the forgotten class on <= `limit` of the forget samples (or, with
    no class given, agrees with the original's predictions on at most that share)."""

    criterion = "forget_agreement"
    gate_check = "forget_accuracy"

    def __init__(self, original: nn.Module, forget: Iterable[Any], retain: Iterable[Any], *,
                 forget_class: int | None = None, limit: float | None = None,
                 device: str | torch.device | None = None) -> None:
        if limit is None:  # the class scenario's gate limit
            limit = load_thresholds().limit(self.gate_check, "class")
        super().__init__(original, forget, retain, limit=limit, device=device)
        self.forget_class = forget_class
        if forget_class is not None:
            self.criterion = "forget_class_share"

    def measure(self, candidate: nn.Module, *, decided_only: bool = False) -> TargetMeasurement:
        # The forget samples decide; the retain sample's forward pass only for a met candidate (or a report).
        forget_logits = self._logits(candidate, self.forget)
        forget_agreement = agreement(forget_logits, self.original_forget)
        value = forget_agreement if self.forget_class is None else \
            float((forget_logits.argmax(dim=1) == self.forget_class).float().mean())
        retain_agreement = None if decided_only and value > self.limit else \
            agreement(self._logits(candidate, self.retain), self.original_retain)
        return TargetMeasurement(self.criterion, value, self.limit, value <= self.limit, retain_agreement,
                                 forget_agreement)

    @classmethod
    def for_scenario(cls, original: nn.Module, *, forget: Iterable[Any], retain: Iterable[Any],
                     held_out: Iterable[Any] | None, forget_class: int | None, limit: float, seed: int,
                     device: str | torch.device | None) -> ClassTarget:
        return cls(original, forget, retain, forget_class=forget_class, limit=limit, device=device)


class SubjectTarget(ForgettingTarget):
    """Met when the calibrated attack's member-rate gap (forget vs held-out) is <= `limit`."""

    criterion = "member_rate_gap"
    gate_check = "member_rate_gap"
    inputs = ("forget", "retain", "held_out")

    def __init__(self, original: nn.Module, forget: Iterable[Any], retain: Iterable[Any],
                 held_out: Iterable[Any], *, limit: float | None = None, seed: int = 0,
                 device: str | torch.device | None = None) -> None:
        if limit is None:  # the subject scenario's gate limit
            limit = load_thresholds().limit(self.gate_check, "subject")
        super().__init__(original, forget, retain, limit=limit, device=device)
        self.held_out, self.seed = held_out, seed

    def measure(self, candidate: nn.Module, *, decided_only: bool = False) -> TargetMeasurement:
        # The calibrated attack needs all three samples: there is no decision without them.
        forget_logits = self._logits(candidate, self.forget)
        retain_logits = self._logits(candidate, self.retain)
        held_out_logits = self._logits(candidate, self.held_out)
        # Same seed every trial: the same split of the held-out sample, so trials differ only by α.
        gap = calibrated_gap(membership_features(retain_logits), membership_features(held_out_logits),
                             membership_features(forget_logits), seed=self.seed, bootstrap=0).gap
        return TargetMeasurement(self.criterion, gap, self.limit, gap <= self.limit,
                                 agreement(retain_logits, self.original_retain),
                                 agreement(forget_logits, self.original_forget))

    @classmethod
    def for_scenario(cls, original: nn.Module, *, forget: Iterable[Any], retain: Iterable[Any],
                     held_out: Iterable[Any] | None, forget_class: int | None, limit: float, seed: int,
                     device: str | torch.device | None) -> SubjectTarget:
        if held_out is None:
            raise EvaluationError("the member-rate gap target needs held-out samples")
        return cls(original, forget, retain, held_out, limit=limit, seed=seed, device=device)


#: The forgetting targets by name (`Scenario.target`).
TARGETS: dict[str, type[ForgettingTarget]] = {
    "forgotten_class_share": ClassTarget,
    "member_rate_gap": SubjectTarget,
}
