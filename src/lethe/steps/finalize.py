"""Settling a run's requests: the `settle-requests` task after the gate (`settle_only=True`: it settles
only what the outcome decides, and leaves a failed run's requests to the exit task), and the exit task
`finalize-requests`, which runs whether the run succeeded or not and releases what is still held.

It settles every request the run still holds, from the run's outcome marker and its final state:
  - the run succeeded and its version became champion  -> fulfilled (with the version), certificate
  - the run succeeded and the gate failed               -> needs_review (with the gate's reasons)
  - anything else (a step failed, no outcome, the champion moved on) -> back to pending, reason noted
so a failure never marks a request fulfilled and never loses one. The reason names the failing step
and its first error line when the run recorded them (`lethe.steps.outcome.read_failure`); KFP's
own message ("Task exit-handler-1 failed.") names neither. Certificates are written after the
ledger is settled; a storage failure then (a full disk) is logged, not raised: the requests are
settled, and `lethe requests export` writes the certificates again.
"""

from __future__ import annotations

import dataclasses
import logging

from lethe.config import settings
from lethe.errors import LetheError
from lethe.forgetting.decisions import GATE_VERDICTS
from lethe.ledger import Ledger, export_certificates
from lethe.retention import load_policy
from lethe.steps.outcome import RunOutcome, read_failure, read_outcome
from lethe.steps.results import SettledRequests
from lethe.steps.retention import apply_retention_policy, certificate_scope
from lethe.storage import join_uri

log = logging.getLogger(__name__)
SUCCEEDED = "SUCCEEDED"


def _release_reason(state: str, error: str, outcome: RunOutcome | None) -> str:
    if state != SUCCEEDED:
        return f"the run ended {state.lower() or 'without a state'}" + (f": {error}" if error else "")
    if outcome is None:
        return "the run produced no model version"
    if outcome.decision == "stale":
        return (f"version {outcome.version} passed the gate but the champion moved on during the run; "
                "it will be re-run from the current champion")
    return f"unexpected outcome {outcome.decision!r}"


def finalize_requests(
    run_id: str,
    *,
    pipeline_state: str = SUCCEEDED,
    error: str = "",
    ledger_url: str | None = None,
    outcome_root: str | None = None,
    certificates_root: str | None = None,
    settle_only: bool = False,
    apply_retention: bool = False,
    model_name: str | None = None,
) -> SettledRequests:
    """Settle the run's requests; returns them by new state, the certificates and a one-line summary.
    `settle_only`: when the outcome decides nothing (a step failed), change nothing (the exit task
    releases them, with the failing step's error). `apply_retention`: then apply the retention policy
    (the exit task); its failure is logged and named in the summary, the requests stay settled."""
    settled = _settle(run_id, pipeline_state=pipeline_state, error=error, ledger_url=ledger_url,
                      outcome_root=outcome_root, certificates_root=certificates_root, settle_only=settle_only)
    if not apply_retention:
        return settled
    try:
        report = apply_retention_policy(ledger_url=ledger_url, model_name=model_name)
    except LetheError as exc:
        log.error("run %s: retention not applied: %s", run_id, exc)
        return dataclasses.replace(settled, summary=f"{settled.summary}; retention not applied ({exc})")
    return dataclasses.replace(settled, summary=f"{settled.summary}; {report.summary}")


def _settle(run_id: str, *, pipeline_state: str, error: str, ledger_url: str | None, outcome_root: str | None,
            certificates_root: str | None, settle_only: bool) -> SettledRequests:
    ledger = Ledger(ledger_url)
    held = ledger.for_run(run_id)
    if not held:
        return SettledRequests(summary=f"run {run_id}: no request to settle")
    held_ids = [r.id for r in held]
    try:
        outcome = read_outcome(run_id, outcome_root)
    except LetheError as exc:  # an unreadable marker is no outcome: nothing may be fulfilled from it
        outcome, error = None, f"{error} (outcome unreadable: {exc})".strip()
    state = (pipeline_state or "").upper()
    if state != SUCCEEDED:
        error = read_failure(run_id, outcome_root) or error
    settled: dict[str, list[str]] = {"fulfilled": [], "needs_review": [], "released": []}
    decided = outcome is not None and state == SUCCEEDED and outcome.decision in GATE_VERDICTS
    if settle_only and not decided:
        return SettledRequests(summary=f"run {run_id}: no outcome to settle; the exit task releases "
                                       f"{len(held_ids)} request(s)")
    covered = [i for i in held_ids if i in set(outcome.request_ids)] if outcome and decided else []
    record = outcome.certified() if outcome else {}
    if outcome and covered and outcome.decision == "pass":
        ledger.fulfil(covered, run_id=run_id, model_version=outcome.version, outcome=record)
        settled["fulfilled"] = covered
    elif outcome and covered:
        reasons = "; ".join(outcome.gate.get("reasons", [])) or "the gate failed"
        ledger.mark_needs_review(covered, run_id=run_id, model_version=outcome.version,
                                 outcome=record, reason=reasons)
        settled["needs_review"] = covered
    rest = [i for i in held_ids if i not in covered]
    if rest:
        reason = _release_reason(state, error, outcome) if not decided else "not part of the run's outcome"
        ledger.release(rest, run_id=run_id, reason=reason)
        settled["released"] = rest
    certificates_uri = certificates_root or join_uri(settings().artifacts, "certificates")
    summary = (f"run {run_id}: {len(settled['fulfilled'])} fulfilled, {len(settled['needs_review'])} "
               f"awaiting review, {len(settled['released'])} back to pending")
    try:
        scope = certificate_scope(load_policy()) if settled["fulfilled"] else None
        certificates = export_certificates(ledger, certificates_uri, request_ids=settled["fulfilled"],
                                           scope=scope)
    except LetheError as exc:  # the ledger is settled already; certificates can be exported again
        log.error("run %s: certificates not written: %s", run_id, exc)
        certificates, summary = [], f"{summary}; certificates not written ({exc})"
    log.info(summary)
    return SettledRequests(summary=summary, certificates=certificates, **settled)

