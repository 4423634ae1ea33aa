"""A forget request resolved against the model's data: what the unlearn and evaluate steps work on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lethe.forgetting.scenarios import Scenario, scenario

if TYPE_CHECKING:
    from lethe.data import ForgetSplit, SampleSet


@dataclass
class ResolvedForgetSet:
    """The model's train and test splits, the forget/retain split of train, and its scenario."""

    dataset: str
    scenario: str  # a row of lethe.forgetting.SCENARIOS
    train: SampleSet
    test: SampleSet
    split: ForgetSplit
    forget_class: int | None

    @property
    def row(self) -> Scenario:
        return scenario(self.scenario)
