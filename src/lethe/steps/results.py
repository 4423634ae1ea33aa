"""What each step returns: one dataclass per step, read by attribute (components, CLI, demo).

`to_dict()` gives the JSON form where a dict is still needed (KFP artifact metadata, the
importances record on disk); it drops optional fields that are unset. Kept import-light (no torch)
so that reading a result costs nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lethe.forgetting.alpha import AlphaMethod
from lethe.forgetting.decisions import Decision, GateVerdict

if TYPE_CHECKING:  # the fetch module loads MLflow and torch; a result is read without either
    from lethe.registry.fetch import FetchedModel

SCALAR_TYPES = (int, float, str, bool)


def _without_none(values: dict[str, Any], optional: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if not (k in optional and v is None)}


@dataclass(frozen=True)
class CollectedRequests:
    """collect_requests: the requests this run honours, those it could not, and the frozen champion."""

    num_requests: int
    num_samples: int
    request_ids: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # request id -> reason
    parent: FetchedModel | None = None  # None when nothing was pending
    dataset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "parent": self.parent.to_dict() if self.parent else {}}


@dataclass(frozen=True)
class PreparedForgetSet:
    """prepare_request: the on-demand forget set written, and the model it applies to."""

    num_samples: int
    scenario: str  # a row of lethe.forgetting.scenarios.SCENARIOS
    parent: FetchedModel
    dataset: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ImportancesKey:
    """What the full-data importances of a model depend on (the importances cache's key)."""

    model_fingerprint: str
    dataset_fingerprint: str
    method: str
    batch_size: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ImportancesResult(ImportancesKey):
    """compute/merge/refresh_importances: the cached entry of the full-data importances."""

    cached: bool  # found in the cache (nothing computed)
    uri: str
    sha256: str
    dataset: str
    num_samples: int
    num_batches: int
    seconds: float
    num_shards: int | None = None  # merge_importances only
    model_version: str | None = None  # refresh_importances of a registry reference only

    def to_dict(self) -> dict[str, Any]:
        return _without_none(asdict(self), ("num_shards", "model_version"))


@dataclass(frozen=True)
class ImportancesShard(ImportancesKey):
    """compute_importances_shard: samples [start, stop) of shard k of K (nothing computed if cached)."""

    shard_index: int
    num_shards: int
    start: int
    stop: int
    cached: bool
    seconds: float


@dataclass(frozen=True)
class UnlearnResult:
    """unlearn: the candidate written to `out_dir`, the α chosen, and what it cost.

    `dampening` is the content of the candidate's dampening.json (`DampeningRecord`'s fields)."""

    out_dir: Path
    scenario: str
    method: str  # the importance method (e.g. "lfssd")
    alpha: float
    cutoff: str  # where dampening acted: `all` (every layer) or the first stage it touched
    lam: float
    alpha_method: AlphaMethod
    target_met: bool
    forget_agreement: float
    retain_agreement: float
    total_selected: int
    fraction_dampened: float
    forget_size: int
    target: dict[str, Any]  # the forgetting target's final measurement (criterion, value, limit, ...)
    importances: dict[str, Any]  # the full-data importances used (path, sha256, computed, ...)
    dampening: dict[str, Any]

    @property
    def summary(self) -> dict[str, Any]:
        """The headline numbers, scalars only (KFP artifact metadata takes nothing else)."""
        names = ("alpha", "cutoff", "lam", "alpha_method", "target_met", "forget_agreement",
                 "retain_agreement", "total_selected", "fraction_dampened", "forget_size")
        return {k: getattr(self, k) for k in names if isinstance(getattr(self, k), SCALAR_TYPES)}

    def to_dict(self) -> dict[str, Any]:
        return {**self.dampening, "summary": self.summary}


@dataclass(frozen=True)
class RepairResult:
    """repair: the repaired candidate written to `out_dir`, its method, budget and what it spent."""

    out_dir: Path
    method: str  # a name of lethe.unlearning.repair's registry
    share_of_recipe: float  # the budget, as a share of the root recipe's sample-steps
    budget: int  # sample-steps allowed
    sample_steps: int  # sample-steps spent
    stopped: str  # "done", or "budget": it stopped where the next batch would have exceeded the budget
    seconds: float  # the method's own time (no evaluation)
    rungs: list[str]  # every rung that made the candidate, in order (dampen, repair)
    recipe: dict[str, int]  # the root recipe's epochs and training samples

    @property
    def summary(self) -> dict[str, Any]:
        """Scalars only (KFP artifact metadata)."""
        names = ("method", "share_of_recipe", "budget", "sample_steps", "stopped", "seconds")
        return {k: getattr(self, k) for k in names}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "out_dir": str(self.out_dir)}


@dataclass(frozen=True)
class EvaluationResult:
    """evaluate: metrics.json's content, its flat numeric metrics, and the gate's decision."""

    metrics: dict[str, Any]
    scalars: dict[str, float]
    decision: GateVerdict

    @property
    def gate(self) -> dict[str, Any]:
        return self.metrics["gate"]

    @property
    def candidate(self) -> dict[str, Any]:
        return self.metrics["candidate"]

    @property
    def parent(self) -> dict[str, Any]:
        return self.metrics["parent"]

    @property
    def evidence(self) -> dict[str, Any]:
        return self.metrics["evidence"]

    def to_dict(self) -> dict[str, Any]:
        return {**self.metrics, "scalars": dict(self.scalars), "decision": self.decision}


@dataclass(frozen=True)
class RegisteredVersion:
    """register_and_gate: the model version registered and what became of it."""

    model_name: str
    version: str
    decision: Decision
    promoted: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SettledRequests:
    """finalize_requests: the run's requests by their new state, the certificates written, a summary."""

    summary: str
    fulfilled: list[str] = field(default_factory=list)
    needs_review: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    certificates: list[str] = field(default_factory=list)  # URIs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RetrainResult:
    """retrain: the version's recipe trained again without every sample the version must forget."""

    out_dir: Path
    scenario: str  # how the candidate is judged: "subject" (the samples) or "class"
    excluded: int  # training samples left out
    request_ids: int  # requests of the lineage whose samples were left out
    forget_classes: list[int]
    epochs: int
    test_accuracy: float | None
    parent_version: str  # "" for a model directory
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "out_dir": str(self.out_dir)}
