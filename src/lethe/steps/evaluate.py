"""The `evaluate` step: measure a candidate against its parent and decide the gate.

Writes `out_dir/metrics.json` (candidate, parent, gate, ...), `report.html`, `report.json` and
the PNG plots; see `lethe.evaluation.evaluate_candidate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lethe.data import SampleSet
from lethe.devices import default_device
from lethe.errors import EvaluationError
from lethe.evaluation.evaluator import DEFAULT_BATCH_SIZE, evaluate_candidate
from lethe.evaluation.per_example import ReferenceOutputs
from lethe.evaluation.thresholds import Thresholds, load_thresholds
from lethe.forgetting.resolved import ResolvedForgetSet
from lethe.models import load_model
from lethe.steps.dampening_record import DampeningRecord
from lethe.steps.forget_set import load_forget_set
from lethe.steps.layout import DAMPENING_FILE
from lethe.steps.results import EvaluationResult
from lethe.steps.training_data import check_model_fits

if TYPE_CHECKING:
    from lethe.audit import ReferenceSet


def _dampening_report(dampening: str | Path | Mapping[str, Any] | None,
                      model_path: str | Path) -> dict | None:
    if isinstance(dampening, Mapping):
        return dict(dampening)
    path = Path(dampening) if dampening is not None else Path(model_path) / DAMPENING_FILE
    if dampening is None and not path.is_file():
        return None  # a candidate from elsewhere (e.g. a baseline) has no dampening report
    return DampeningRecord.read(path).to_fields()


def reference_outputs(references: ReferenceSet, forget_set: ResolvedForgetSet) -> ReferenceOutputs:
    """The reference models' cached logits on this request's forget and test samples, checked against
    the data (no forward pass: they were computed once per version)."""
    references.check_dataset(forget_set.train.fingerprint())
    test = forget_set.test
    if references.test_ids and list(references.test_ids) != list(test.ids) \
            or references.test_logits.shape[1] != len(test):
        raise EvaluationError(f"the reference models' test logits do not cover the test split of "
                              f"{forget_set.dataset} sample for sample: prepare the references for this data")
    # With the subject groups and the null of persons, or why the set judges no person (lethe.audit).
    return references.outputs(references.indices_of(forget_set.split.forget.ids))


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
    Thresholds (see `lethe.evaluation.thresholds.load_thresholds`).
    `dampening`: the unlearn step's dampening.json (default: the one in `model_path`, if any).
    Returns metrics.json's content, its flat `scalars` and the gate's `decision`.
    """
    limits = load_thresholds(thresholds)
    candidate, card = load_model(model_path)
    parent, parent_card = load_model(parent_path)
    made_from = card.extra.get("parent_fingerprint")  # unlearned and repaired models record it
    if made_from and made_from != parent_card.fingerprint:
        raise EvaluationError(f"the candidate was made from model {made_from[:12]}, not from the parent "
                              f"given ({parent_card.fingerprint[:12]}): judge it against its own parent")
    forget_set = load_forget_set(dataset, card, forget_ids=forget_ids, forget_subjects=forget_subjects,
                                 forget_class=forget_class, scenario=scenario, subjects_file=subjects_file,
                                 data_dir=data_dir)
    check_model_fits(parent_card, forget_set.train, what="parent model")
    references = None
    if forget_set.row.per_example and use_references:
        from lethe.audit import find_references  # audit's torch training code: only where it is used

        found = find_references(parent_card, root_uri=references_root)
        references = reference_outputs(found, forget_set) if found is not None else None
    split = forget_set.split
    metrics = evaluate_candidate(
        candidate, parent, retain=split.retain, forget=split.forget, test=forget_set.test,
        scenario=forget_set.scenario, forget_class=forget_set.forget_class, out_dir=out_dir,
        thresholds=limits, dampening=_dampening_report(dampening, model_path), batch_size=batch_size,
        device=device or default_device(), progress=progress, seed=seed,
        context={"dataset": forget_set.dataset, "models": {"candidate_fingerprint": card.fingerprint,
                                                           "parent_fingerprint": parent_card.fingerprint}},
        references=references, requests=request_rows(split.forget, requests) if requests else None)
    return EvaluationResult(metrics=metrics, scalars=scalars(metrics), decision=metrics["gate"]["decision"])


__all__ = ["evaluate", "membership_scalars", "reference_outputs", "request_rows", "scalars"]
