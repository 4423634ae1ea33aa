"""The `evaluate` step: measure a candidate against its parent and decide the gate.

Writes `out_dir/metrics.json` (candidate, parent, gate, ...), `report.html`, `report.json` and
the PNG plots; see `lethe.evaluation.evaluate_candidate`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lethe.data import ForgetSplit, SampleSet, load_dataset, resolve_forget_set, subject_map
from lethe.devices import default_device
from lethe.errors import ConfigError, EvaluationError
from lethe.evaluation import SCENARIOS, Thresholds, evaluate_candidate
from lethe.evaluation.evaluator import DEFAULT_BATCH_SIZE
from lethe.evaluation.per_example import ReferenceOutputs
from lethe.models import ModelCard, load_model
from lethe.steps.layout import DAMPENING_FILE
from lethe.steps.results import EvaluationResult
from lethe.steps.thresholds import resolve_thresholds
from lethe.steps.training_data import check_model_fits, dataset_for, training_data

if TYPE_CHECKING:
    from lethe.audit import ReferenceSet


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
    """Load train and test of `dataset` (default: LETHE_DATASET_URI, else the model card's), checked
    against the model's card (`lethe.steps.training_data`), and split off the forget set."""
    name = dataset_for(card, dataset)
    scenario = infer_scenario(scenario, forget_ids=forget_ids, forget_subjects=forget_subjects,
                              forget_class=forget_class)
    train = training_data(card, name, data_dir=data_dir)
    mapping = subject_map(train, subjects_file) if forget_subjects else None
    split = resolve_forget_set(train, ids=forget_ids, subjects=forget_subjects, subjects_map=mapping,
                               forget_class=forget_class)
    test = load_dataset(name, "test", data_dir=data_dir)
    check_model_fits(card, test)
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


def reference_outputs(references: ReferenceSet, request: Request) -> ReferenceOutputs:
    """The reference models' cached logits on this request's forget and test samples, checked against
    the data (no forward pass: they were computed once per version)."""
    references.check_dataset(request.train.fingerprint())
    test = request.test
    if references.test_ids and list(references.test_ids) != list(test.ids) \
            or references.test_logits.shape[1] != len(test):
        raise EvaluationError(f"the reference models' test logits do not cover the test split of "
                              f"{request.dataset} sample for sample: prepare the references for this data")
    # With the subject groups and the null of persons, or why the set judges no person (lethe.audit).
    return references.outputs(references.indices_of(request.split.forget.ids))


def request_rows(forget: SampleSet, requests: Mapping[str, Sequence[str]]) -> dict[str, list[int]]:
    """Request id → positions of its sample ids in the forget set (a sample of no request is refused)."""
    rows = {request_id: forget.indices_of(list(ids)).tolist() for request_id, ids in requests.items()}
    covered = {i for positions in rows.values() for i in positions}
    if len(covered) != len(forget):
        raise EvaluationError(f"{len(forget) - len(covered)} forget sample(s) belong to no request")
    return rows


#: The per-example scalars, per FPR key of the evidence ("0.01" -> "fpr1").
def _fpr_name(key: str) -> str:
    return f"fpr{100 * float(key):g}"


def membership_scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The membership results as flat numbers: the population attack's rates, gap and its CI per model;
    with reference models, the per-example shares (all forget samples) before and after, the held-out
    non-members' share, and how many requests had each outcome."""
    flat: dict[str, float] = {}
    for role in ("candidate", "parent"):
        mia = (metrics.get(role) or {}).get("mia") or {}
        for key in ("reference_member_rate", "holdout_member_rate", "forget_member_rate", "gap"):
            if mia.get(key) is not None:
                flat[f"{role}_mia_{key}"] = float(mia[key])
        if mia.get("gap_ci"):
            flat[f"{role}_mia_gap_ci_low"], flat[f"{role}_mia_gap_ci_high"] = map(float, mia["gap_ci"])
    per_example = metrics.get("per_example") or {}
    for key, shares in (per_example.get("overall") or {}).items():
        for name in ("parent", "candidate", "parent_non_member", "candidate_non_member"):
            share = shares.get(name) or {}
            for field in ("share", "ci_low", "ci_high"):
                if share.get(field) is not None:
                    flat[f"per_example_{name}_{field}_{_fpr_name(key)}"] = float(share[field])
    for outcome, count in (per_example.get("outcome_counts") or {}).items():
        flat[f"per_example_requests_{outcome}"] = float(count)
    if (metrics.get("gate") or {}).get("membership_test"):
        flat["membership_test_per_example"] = float(metrics["gate"]["membership_test"] == "per-example")
    return flat


def scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Flat numeric metrics for trackers (MLflow, KFP Metrics): `candidate_test_accuracy`, ..."""
    flat: dict[str, float] = {}
    for role in ("candidate", "parent"):
        block = metrics[role]
        for key in ("retain_accuracy", "forget_accuracy", "test_accuracy", "forgotten_class_test_accuracy"):
            if block.get(key) is not None:
                flat[f"{role}_{key}"] = float(block[key])
    flat.update(membership_scalars(metrics))
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
    requests: Mapping[str, Sequence[str]] | None = None,
    use_references: bool = True,
    references_root: str | None = None,
) -> EvaluationResult:
    """Evaluate the model directory `model_path` against `parent_path` on the forget request.

    Subject scenario: when the parent's version has reference models (`lethe.audit.find_references`,
    under `references_root`, default the artifacts' `audit/references`), the per-example test decides
    membership, per request of `requests` (request id → its sample ids; default: one for all).

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
    references = None
    if request.scenario == "subject" and use_references:
        from lethe.audit import find_references

        found = find_references(parent_card, root_uri=references_root)
        references = reference_outputs(found, request) if found is not None else None
    metrics = evaluate_candidate(
        candidate, parent, retain=request.split.retain, forget=request.split.forget, test=request.test,
        scenario=request.scenario, forget_class=request.forget_class, out_dir=out_dir, thresholds=limits,
        dampening=_dampening_report(dampening, model_path), batch_size=batch_size,
        device=device or default_device(), progress=progress, seed=seed,
        context={"dataset": request.dataset, "models": {"candidate_fingerprint": card.fingerprint,
                                                        "parent_fingerprint": parent_card.fingerprint}},
        references=references, requests=request_rows(request.split.forget, requests) if requests else None)
    return EvaluationResult(metrics=metrics, scalars=scalars(metrics), decision=metrics["gate"]["decision"])


__all__ = ["Request", "check_model_fits", "evaluate", "infer_scenario", "membership_scalars",
           "reference_outputs", "request_rows", "resolve_request", "scalars"]
