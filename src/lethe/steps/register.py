"""register-and-gate: the candidate becomes a model version in MLflow, with its evidence and lineage.

The gate's decision comes from the evaluation (metrics.json); the registry moves `champion` only on
a pass (and only if the champion did not move on meanwhile), else tags the version review=pending.
The outcome is also written to the run's outcome marker, which the exit task reads to settle the
requests. Idempotent per run id (the version's `lethe.run_id` tag), so the step may be retried.
Sample ids never reach MLflow: they are handed to the registry's privacy guard.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lethe.errors import PipelineError
from lethe.forgetting.decisions import GATE_VERDICTS, Decision
from lethe.forgetting.spec import ForgetSpec
from lethe.steps.dampening_record import DampeningRecord
from lethe.steps.ladder import final_history
from lethe.steps.layout import DAMPENING_FILE, METRICS_FILE, importances_file
from lethe.steps.layout import IMPORTANCES_INFO_FILE as INFO_FILE
from lethe.steps.outcome import RunOutcome, write_outcome
from lethe.steps.results import RegisteredVersion
from lethe.storage import sha256_file

EVIDENCE_SUFFIXES = (".json", ".html", ".png")
# The candidate's numbers a reviewer compares first (also on the version as metrics).
HEADLINE = ("retain_accuracy", "forget_accuracy", "test_accuracy", "forgotten_class_test_accuracy")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PipelineError(f"cannot read {what} at {path}: {exc}") from exc


def method_of(dampening: dict[str, Any], candidate_dir: Path) -> str | None:
    """The importance method the candidate was unlearned with: from dampening.json (its `method`,
    or the importances' metadata in records written before it had one), else the model card."""
    method = dampening.get("method") or (dampening.get("importances") or {}).get("method")
    if method:
        return str(method)
    card_path = candidate_dir / "model.json"
    card = _read_json(card_path, "the model card") if card_path.is_file() else {}
    return (card.get("unlearning") or {}).get("method") or None


def membership_of(metrics: dict[str, Any]) -> dict[str, float]:
    """The membership results of the evaluation as MLflow metrics (`membership.<name>`): population
    attack rates, gap and CI, per-example shares before and after, outcome counts."""
    from lethe.steps.evaluate import membership_scalars

    return membership_scalars(metrics)


def decision_of(promoted: bool, gate_passed: bool) -> Decision:
    """`pass` (new champion), `review` (the gate failed), `stale` (passed, but the champion moved on)."""
    if promoted:
        return "pass"
    return "stale" if gate_passed else "review"


def register_and_gate(
    candidate_dir: str | Path,
    evaluation_dir: str | Path,
    forget_path: str | Path,
    *,
    run_id: str,
    model_name: str | None = None,
    importances_path: str | Path | None = None,
    tracking_uri: str | None = None,
    outcome_root: str | None = None,
) -> RegisteredVersion:
    """Register the candidate, apply the gate, record the outcome; returns version and decision."""
    from lethe.registry import Registry

    candidate_dir, evaluation_dir = Path(candidate_dir), Path(evaluation_dir)
    spec = ForgetSpec.load(forget_path)
    metrics = _read_json(evaluation_dir / METRICS_FILE, "the evaluation")
    gate = metrics.get("gate") or {}
    if gate.get("decision") not in GATE_VERDICTS:
        raise PipelineError(f"the evaluation at {evaluation_dir} holds no gate decision")
    dampening_path = candidate_dir / DAMPENING_FILE
    dampening = DampeningRecord.read(dampening_path).to_fields() if dampening_path.is_file() else {}

    importances_uri = importances_sha = None
    if importances_path is not None:
        info_path = Path(importances_path) / INFO_FILE
        info = _read_json(info_path, "the importances record") if info_path.is_file() else {}
        importances_uri = info.get("uri")
        importances_sha = info.get("sha256") or sha256_file(importances_file(importances_path))

    candidate, parent_metrics = metrics.get("candidate") or {}, metrics.get("parent") or {}
    headline = {k: candidate[k] for k in HEADLINE if isinstance(candidate.get(k), (int, float))}
    evidence = sorted(p for p in evaluation_dir.iterdir() if p.is_file() and p.suffix in EVIDENCE_SUFFIXES)
    registry = Registry(tracking_uri, model_name or spec.parent.get("name") or None)
    alpha = dampening.get("alpha")
    method = method_of(dampening, candidate_dir)
    rungs = final_history(candidate_dir, metrics)  # every rung that made it, the last with this verdict
    info = registry.register_version(
        candidate_dir, gate={"passed": gate["decision"] == "pass", "reasons": gate.get("reasons", [])},
        scenario=spec.scenario, parent_version=spec.parent.get("version") or None,
        request_ids=spec.request_ids, params={"run_id": run_id, "dataset": spec.dataset,
                                              "forget_samples": spec.num_samples},
        metrics={"candidate": headline, "parent": {k: parent_metrics.get(k) for k in headline},
                 "membership": membership_of(metrics)},
        evidence=evidence, importances_uri=importances_uri, importances_sha256=importances_sha,
        alpha=float(alpha) if isinstance(alpha, (int, float)) else None,
        lam=dampening.get("lam"), method=method,
        forbidden=spec.sample_ids, run_name=f"{spec.scenario}-{run_id}",
        # idempotent: a retry of this run's step returns the version it registered
        run_key=run_id, ladder=rungs)
    decision = decision_of(info.is_champion, gate["decision"] == "pass")
    outcome = RunOutcome(
        run_id=run_id, model_name=info.name, version=info.version, decision=decision,
        gate=gate, request_ids=spec.request_ids, scenario=spec.scenario,
        parent_version=spec.parent.get("version") or None, metrics=headline,
        algorithm=method,
        parameters={"alpha": dampening.get("alpha"), "lam": dampening.get("lam"),
                    "alpha_method": dampening.get("alpha_method"),
                    "batch_size": (dampening.get("importances") or {}).get("batch_size")},
        ladder=rungs,
    )
    write_outcome(run_id, outcome, outcome_root)
    return RegisteredVersion(model_name=info.name, version=info.version, decision=decision,
                             promoted=info.is_champion)
