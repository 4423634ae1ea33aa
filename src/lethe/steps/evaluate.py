"""The `evaluate` step: measure a candidate against its parent and decide the gate.

Writes `out_dir/metrics.json` (candidate, parent, gate, ...), `report.html`, `report.json` and
the PNG plots; see `lethe.evaluation.evaluate_candidate`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lethe.data import ForgetSplit, SampleSet, load_dataset, resolve_forget_set, subject_map
from lethe.devices import default_device
from lethe.errors import ConfigError, EvaluationError, ModelError
from lethe.evaluation import SCENARIOS, Thresholds, evaluate_candidate
from lethe.evaluation.evaluator import DEFAULT_BATCH_SIZE
from lethe.models import ModelCard, load_model
from lethe.steps.layout import DAMPENING_FILE
from lethe.steps.results import EvaluationResult
from lethe.steps.thresholds import resolve_thresholds


@dataclass
class Request:
    """A forget request resolved against a data set: the samples, and how to judge forgetting."""

    dataset: str
    scenario: str
    train: SampleSet
    test: SampleSet
    split: ForgetSplit
    forget_class: int | None


def infer_scenario(scenario: str | None, *, forget_ids: Sequence[str], forget_subjects: Sequence[str],
                   forget_class: int | None) -> str:
    """The given scenario, checked; by default `class` for a class alone, else `subject`."""
    if scenario is None:
        return "class" if forget_class is not None and not forget_ids and not forget_subjects else "subject"
    if scenario not in SCENARIOS:
        raise ConfigError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")
    return scenario


def check_model_fits(card: ModelCard, samples: SampleSet, *, what: str = "model") -> None:
    """Refuse a model whose classes or channels differ from the data set's."""
    if card.num_classes != samples.num_classes:
        raise ModelError(f"the {what} has {card.num_classes} classes but data set {samples.name} has "
                         f"{samples.num_classes}")
    if card.in_channels != samples.in_channels:
        raise ModelError(f"the {what} takes {card.in_channels}-channel images but data set {samples.name} "
                         f"has {samples.in_channels} channels")


def resolve_request(
    dataset: str | None,
    card: ModelCard,
    *,
    forget_ids: Sequence[str] = (),
    forget_subjects: Sequence[str] = (),
    forget_class: int | None = None,
    scenario: str | None = None,
    subjects_file: str | Path | None = None,
    data_dir: str | None = None,
) -> Request:
    """Load train and test of `dataset` (default: the model card's) and split off the forget set."""
    name = dataset or card.dataset
    if not name:
        raise ConfigError("no data set given and the model card names none")
    scenario = infer_scenario(scenario, forget_ids=forget_ids, forget_subjects=forget_subjects,
                              forget_class=forget_class)
    train = load_dataset(name, "train", data_dir=data_dir)
    check_model_fits(card, train)
    mapping = subject_map(train, subjects_file) if forget_subjects else None
    split = resolve_forget_set(train, ids=forget_ids, subjects=forget_subjects, subjects_map=mapping,
                               forget_class=forget_class)
    test = load_dataset(name, "test", data_dir=data_dir)
    return Request(name, scenario, train, test, split, forget_class)


def _dampening_report(dampening: str | Path | Mapping[str, Any] | None,
                      model_path: str | Path) -> dict | None:
    if isinstance(dampening, Mapping):
        return dict(dampening)
    path = Path(dampening) if dampening is not None else Path(model_path) / DAMPENING_FILE
    if dampening is None and not path.is_file():
        return None  # a candidate from elsewhere (e.g. a baseline) has no dampening report
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"cannot read the dampening report {path}: {exc}") from exc


def scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Flat numeric metrics for trackers (MLflow, KFP Metrics): `candidate_test_accuracy`, ..."""
    flat: dict[str, float] = {}
    for role in ("candidate", "parent"):
        block = metrics[role]
        for key in ("retain_accuracy", "forget_accuracy", "test_accuracy", "forgotten_class_test_accuracy"):
            if block.get(key) is not None:
                flat[f"{role}_{key}"] = float(block[key])
        for key in ("reference_member_rate", "holdout_member_rate", "forget_member_rate", "gap"):
            if block["mia"].get(key) is not None:
                flat[f"{role}_mia_{key}"] = float(block["mia"][key])
    flat["gate_pass"] = 1.0 if metrics["gate"]["decision"] == "pass" else 0.0
    return flat


def evaluate(
    model_path: str | Path,
    parent_path: str | Path,
    dataset: str | None = None,
    *,
    forget_ids: Sequence[str] = (),
    forget_subjects: Sequence[str] = (),
    forget_class: int | None = None,
    scenario: str | None = None,
    out_dir: str | Path,
    thresholds: str | Path | Thresholds | None = None,
    dampening: str | Path | Mapping[str, Any] | None = None,
    subjects_file: str | Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | None = None,
    progress: bool = True,
    seed: int = 0,
    data_dir: str | None = None,
) -> EvaluationResult:
    """Evaluate the model directory `model_path` against `parent_path` on the forget request.

    `thresholds`: overrides of the default gate thresholds: a YAML file, a storage URI, inline YAML or a
    Thresholds (see `lethe.steps.thresholds.resolve_thresholds`).
    `dampening`: the unlearn step's dampening.json (default: the one in `model_path`, if any).
    Returns metrics.json's content, its flat `scalars` and the gate's `decision`.
    """
    limits = resolve_thresholds(thresholds)
    candidate, card = load_model(model_path)
    parent, parent_card = load_model(parent_path)
    request = resolve_request(dataset, card, forget_ids=forget_ids, forget_subjects=forget_subjects,
                              forget_class=forget_class, scenario=scenario, subjects_file=subjects_file,
                              data_dir=data_dir)
    check_model_fits(parent_card, request.train, what="parent model")
    metrics = evaluate_candidate(
        candidate, parent, retain=request.split.retain, forget=request.split.forget, test=request.test,
        scenario=request.scenario, forget_class=request.forget_class, out_dir=out_dir, thresholds=limits,
        dampening=_dampening_report(dampening, model_path), batch_size=batch_size,
        device=device or default_device(), progress=progress, seed=seed,
        context={"dataset": request.dataset, "models": {"candidate_fingerprint": card.fingerprint,
                                                        "parent_fingerprint": parent_card.fingerprint}})
    return EvaluationResult(metrics=metrics, scalars=scalars(metrics), decision=metrics["gate"]["decision"])


__all__ = ["Request", "check_model_fits", "evaluate", "infer_scenario", "resolve_request", "scalars"]
