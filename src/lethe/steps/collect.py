"""collect-requests: the start of a scheduled run.

Claims pending erasure requests for the run (earliest deadline first, atomically, with a lease),
freezes the champion model they will be forgotten from, and resolves each request to sample ids:
the ledger keeps only the subject's keyed hash, so the subject map is hashed with the same key and
matched. A request that cannot be resolved (unknown subject or sample ids) fails with its reason;
the others go on. Nothing pending: no claim, no download, an empty forget set (`num_requests` 0).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from lethe.errors import PipelineError
from lethe.ledger import PENDING, ErasureRequest, Ledger
from lethe.steps.forget_spec import ForgetSpec
from lethe.steps.results import CollectedRequests

if TYPE_CHECKING:
    from lethe.data import SampleSet

log = logging.getLogger(__name__)
DEFAULT_LEASE_HOURS = 6.0


def resolve_requests(
    requests: Sequence[ErasureRequest],
    train: SampleSet,
    hashed_subjects: Mapping[str, Sequence[str]],
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(request id -> sample ids, request id -> reason it cannot be honoured)."""
    resolved: dict[str, list[str]] = {}
    failed: dict[str, str] = {}
    for request in requests:
        if request.sample_ids:
            unknown = [s for s in request.sample_ids if s not in train.index]
            if unknown:
                failed[request.id] = (f"{len(unknown)} of {len(request.sample_ids)} sample id(s) are not in "
                                      f"{train.name}/{train.split}")
                continue
            resolved[request.id] = list(request.sample_ids)
        elif request.subject_hash in hashed_subjects:
            resolved[request.id] = list(hashed_subjects[request.subject_hash])
        else:
            failed[request.id] = f"the subject is unknown to the subject map of {train.name}/{train.split}"
    return resolved, failed


def collect_requests(
    run_id: str,
    *,
    forget_path: str | Path,
    model_dir: str | Path,
    dataset: str | None = None,
    model_name: str | None = None,
    max_requests: int | None = None,
    subject_map: str | None = None,
    ledger_url: str | None = None,
    tracking_uri: str | None = None,
    lease_hours: float = DEFAULT_LEASE_HOURS,
) -> CollectedRequests:
    """Claim and resolve this run's requests; writes the forget set and the champion's model dir."""
    if not run_id:
        raise PipelineError("collect-requests needs the run id")
    ledger = Ledger(ledger_url)
    held = ledger.for_run(run_id)  # a retried task finds its own claim again
    if not held and not ledger.list_requests(PENDING):
        ForgetSpec(scenario="subject", dataset=dataset or "").save(forget_path)
        Path(model_dir).mkdir(parents=True, exist_ok=True)
        return CollectedRequests(num_requests=0, num_samples=0)

    # Loaded only now: a run with nothing to do should not pay for torch and MLflow.
    from lethe.data import load_dataset
    from lethe.data import subject_map as subjects_of
    from lethe.models import read_card
    from lethe.steps.prepare import fetch_model

    # The champion first: without one nothing is claimed (bad state changes nothing).
    parent = fetch_model("champion", model_dir, tracking_uri=tracking_uri, model_name=model_name)
    name = dataset or read_card(model_dir).dataset
    if not name:
        raise PipelineError("no data set given and the champion's model card names none")
    train = load_dataset(name, "train")
    hashed = {ledger.subject_hash(subject): samples
              for subject, samples in subjects_of(train, subject_map).items()}

    limit = None if not max_requests else max(int(max_requests) - len(held), 0)
    claimed = held + (ledger.claim(run_id, limit=limit, lease=timedelta(hours=lease_hours))
                      if limit is None or limit > 0 else [])
    resolved, failed = resolve_requests(claimed, train, hashed)
    for request_id, reason in failed.items():
        ledger.fail([request_id], run_id=run_id, reason=reason)

    sample_ids = list(dict.fromkeys(s for ids in resolved.values() for s in ids))
    if sample_ids and len(sample_ids) >= len(train):
        raise PipelineError(f"the requests name all {len(train)} training samples: nothing would remain")
    spec = ForgetSpec(scenario="subject", dataset=name, sample_ids=sample_ids, request_ids=list(resolved),
                      parent={**parent.to_dict(), "name": parent.name or model_name or ""},
                      num_samples=len(sample_ids), num_subjects=len(resolved))
    spec.save(forget_path)
    log.info("run %s: %d request(s) claimed, %d failed, %d sample(s) to forget", run_id, len(claimed),
             len(failed), len(sample_ids))
    return CollectedRequests(num_requests=len(resolved), num_samples=len(sample_ids),
                             request_ids=list(resolved), failed=failed, parent=parent, dataset=name)
