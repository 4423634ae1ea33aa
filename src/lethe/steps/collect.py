"""collect-requests: the start of a scheduled run.

First returns every request whose lease expired (its run died) to pending, whatever else is
pending, so a dead run's requests are taken up by the next run. Then claims pending erasure
requests for the run (earliest deadline first, atomically, with a lease: LETHE_LEASE_SECONDS),
freezes the champion model they will be forgotten from, and resolves each request to sample ids:
the ledger keeps only the subject's keyed hash, so the subject map is hashed with the same key and
matched. A request that cannot be resolved (an unknown subject, or not one of its sample ids in the
data) fails with its reason; the others go on. Ids of a request that name no sample of the data are
noted in its history and certificate (nothing to forget for them), and its other ids are forgotten.
`request add` and `request amend` resolve a request with the same code before it is filed
(`check_request`), so an unknown id or subject is refused at filing, not a month later.
Nothing pending: no claim, no download, an empty forget set (`num_requests` 0).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lethe.config import environment, settings
from lethe.errors import ConfigError, PipelineError, UnknownSamplesError
from lethe.forgetting.scenarios import DEFAULT_SCENARIO
from lethe.forgetting.spec import ForgetSpec
from lethe.ledger import HONOURED_STATES, PENDING, ErasureRequest, Ledger
from lethe.steps.results import CollectedRequests

if TYPE_CHECKING:
    from datetime import timedelta

    from lethe.data import SampleSet
    from lethe.models import ModelCard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resolution:
    """One request resolved against a data set: what a run forgets for it, and what it cannot."""

    sample_ids: list[str]  # the samples to forget
    not_in_data: list[str] = field(default_factory=list)  # the request's ids that name no sample
    reason: str | None = None  # why nothing can be forgotten; None when something can


def hashed_subject_map(ledger: Ledger, train: SampleSet,
                       subject_map: str | None = None) -> dict[str, list[str]]:
    """The subject map keyed by each subject's hash under every scheme: a request filed under an older
    scheme still finds its subject, and ids that normalise alike (one person) merge their samples."""
    from lethe.data import subject_map as subjects_of

    hashed: dict[str, list[str]] = {}
    for subject, samples in subjects_of(train, subject_map).items():
        for subject_hash in ledger.subject_hashes(subject).values():
            hashed[subject_hash] = list(dict.fromkeys([*hashed.get(subject_hash, ()), *samples]))
    return hashed


def resolve_request(sample_ids: Sequence[str], subject_hashes: Iterable[str], train: SampleSet,
                    hashed_subjects: Mapping[str, Sequence[str]]) -> Resolution:
    """A request's samples in `train`: its sample ids that are there, or, when it names none, every
    sample of its subject (found by any of `subject_hashes`)."""
    where = f"{train.name}/{train.split}"
    if sample_ids:
        known = [s for s in sample_ids if s in train.index]
        unknown = [s for s in sample_ids if s not in train.index]
        reason = (f"{len(unknown)} of {len(sample_ids)} sample id(s) are not in {where}: nothing to forget"
                  if not known else None)
        return Resolution(known, unknown, reason)
    for subject_hash in subject_hashes:
        if subject_hash in hashed_subjects:
            return Resolution(list(hashed_subjects[subject_hash]))
    return Resolution([], [], f"the subject is unknown to the subject map of {where}")


def resolve_requests(
    requests: Sequence[ErasureRequest],
    train: SampleSet,
    hashed_subjects: Mapping[str, Sequence[str]],
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(request id -> sample ids to forget, request id -> reason nothing of it can be forgotten)."""
    resolved: dict[str, list[str]] = {}
    failed: dict[str, str] = {}
    for request in requests:
        found = resolve_request(request.sample_ids, [request.subject_hash], train, hashed_subjects)
        if found.reason is None:
            resolved[request.id] = found.sample_ids
        else:
            failed[request.id] = found.reason
    return resolved, failed


def _champion_card(tracking_uri: str | None, model_name: str | None) -> ModelCard | None:
    """The champion's model card (its file only, checked against the version's manifest), or None."""
    import json

    from lethe.errors import IntegrityError
    from lethe.models import read_card
    from lethe.registry import Registry
    from lethe.registry.client import mlflow_errors
    from lethe.registry.tags import MODEL_MANIFEST_TAG
    from lethe.storage import seal_local_file, sha256_file

    registry = Registry(tracking_uri, model_name)
    if registry.champion_version() is None:
        return None
    info = registry.resolve("champion")
    expected = json.loads(info.tags.get(MODEL_MANIFEST_TAG, "{}")).get("model.json")
    quiet = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}  # one small file: no progress bar
    with tempfile.TemporaryDirectory(prefix="lethe-card-") as tmp, mlflow_errors(registry.tracking_uri), \
            environment(quiet):
        card_path = Path(registry.client.download_artifacts(info.run_id, "model/model.json", tmp))
        if expected is None or sha256_file(card_path) != expected:
            raise IntegrityError(f"the model card of {info.name} version {info.version} differs from the one "
                                 "registered")
        seal_local_file(card_path)  # checked against the registry's manifest just above
        return read_card(card_path.parent)


def check_request(
    subject_hashes: Sequence[str],
    sample_ids: Sequence[str],
    *,
    ledger: Ledger,
    dataset: str | None = None,
    subject_map: str | None = None,
    tracking_uri: str | None = None,
    model_name: str | None = None,
) -> Resolution:
    """Resolve a request before it is filed, as a run would: against the champion's training data
    (`dataset` names another copy of it; with no champion, the data set to check against) and the
    subject map. Anything unknown raises `UnknownSamplesError` naming the first few ids (never the
    subject); nothing is stored here."""
    from lethe.data import dataset_location, load_dataset
    from lethe.steps.training_data import training_data

    card = _champion_card(tracking_uri, model_name)
    if card is not None:
        train = training_data(card, dataset, what="champion")
    elif dataset:
        train = load_dataset(dataset_location(dataset), "train")
    else:
        raise ConfigError("no champion is registered to check the request against: register one (`lethe "
                          "model register DIR --champion`), name its data set (--dataset), or file the "
                          "request unchecked (--defer-check)")
    hashed = hashed_subject_map(ledger, train, subject_map) if not sample_ids else {}
    found = resolve_request(sample_ids, subject_hashes, train, hashed)
    where = f"{train.name}/{train.split} ({len(train):,} samples)"
    if found.not_in_data:
        shown = ", ".join(found.not_in_data[:3]) + (", ..." if len(found.not_in_data) > 3 else "")
        raise UnknownSamplesError(f"{len(found.not_in_data)} of {len(sample_ids)} sample id(s) are not in "
                                  f"{where}: {shown}; nothing was recorded")
    if found.reason is not None:
        raise UnknownSamplesError(f"the subject is unknown to the subject map of {where}; nothing was "
                                  "recorded (name its sample ids with --samples, or check the subject id)")
    return found


def check_champion(ledger: Ledger, *, tracking_uri: str | None = None, model_name: str | None = None
                   ) -> str | None:
    """The drift check (`lethe.retention.drift`): reopen the fulfilled requests the champion does not
    honour; returns its one line, or None. Loads MLflow only when some request is fulfilled."""
    if not any(ledger.list_requests(state) for state in HONOURED_STATES):
        return None
    tracking = tracking_uri or settings().tracking
    if tracking.startswith("sqlite:///") and not Path(tracking.removeprefix("sqlite:///")).is_file():
        return None  # no registry here: no champion to check (and none is created by looking)
    from lethe.registry import Registry
    from lethe.retention import check_drift

    line = check_drift(ledger, Registry(tracking, model_name)).line
    if line:
        log.warning(line)
    return line


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
    lease: timedelta | None = None,
) -> CollectedRequests:
    """Claim and resolve this run's requests; writes the forget set and the champion's model dir."""
    if not run_id:
        raise PipelineError("collect-requests needs the run id")
    ledger = Ledger(ledger_url)
    reclaimed = ledger.reclaim_expired()  # before the "nothing pending" check: a dead run's requests
    if reclaimed:
        log.warning("run %s: %d request(s) of a run that stopped renewing its lease are pending again",
                    run_id, len(reclaimed))
    check_champion(ledger, tracking_uri=tracking_uri, model_name=model_name)  # drift reopens requests
    held = ledger.for_run(run_id)  # a retried task finds its own claim again
    if not held and not ledger.list_requests(PENDING):
        ForgetSpec(scenario=DEFAULT_SCENARIO, dataset=dataset or "").save(forget_path)
        Path(model_dir).mkdir(parents=True, exist_ok=True)
        return CollectedRequests(num_requests=0, num_samples=0)

    # Loaded only now: a run with nothing to do should not pay for torch and MLflow.
    from lethe.models import read_card
    from lethe.registry.fetch import fetch_model
    from lethe.steps.training_data import dataset_for, training_data

    # The champion first: without one nothing is claimed (bad state changes nothing), nor with data
    # that is not the champion's, nor with a subject map that cannot be read.
    parent = fetch_model("champion", model_dir, tracking_uri=tracking_uri, model_name=model_name)
    card = read_card(model_dir)
    name = dataset_for(card, dataset)
    train = training_data(card, name, what="champion")
    hashed = hashed_subject_map(ledger, train, subject_map)

    limit = None if not max_requests else max(int(max_requests) - len(held), 0)
    claimed = held + (ledger.claim(run_id, limit=limit, lease=lease)
                      if limit is None or limit > 0 else [])
    resolved: dict[str, list[str]] = {}
    failed: dict[str, str] = {}
    for request in claimed:
        found = resolve_request(request.sample_ids, [request.subject_hash], train, hashed)
        if found.reason is not None:
            failed[request.id] = found.reason
            ledger.fail([request.id], run_id=run_id, reason=found.reason)
            continue
        resolved[request.id] = found.sample_ids
        ledger.note_resolution(request.id, run_id=run_id, forgotten=len(found.sample_ids),
                               not_in_data=found.not_in_data,
                               forgotten_ids=() if request.sample_ids else found.sample_ids)

    sample_ids = list(dict.fromkeys(s for ids in resolved.values() for s in ids))
    if sample_ids and len(sample_ids) >= len(train):
        raise PipelineError(f"the requests name all {len(train)} training samples: nothing would remain")
    # A ledger request names samples or a subject: the default scenario judges them.
    spec = ForgetSpec(scenario=DEFAULT_SCENARIO, dataset=name, sample_ids=sample_ids,
                      request_ids=list(resolved),
                      parent={**parent.to_dict(), "name": parent.name or model_name or ""},
                      num_samples=len(sample_ids), num_subjects=len(resolved), request_samples=resolved)
    spec.save(forget_path)
    log.info("run %s: %d request(s) claimed, %d failed, %d sample(s) to forget", run_id, len(claimed),
             len(failed), len(sample_ids))
    return CollectedRequests(num_requests=len(resolved), num_samples=len(sample_ids),
                             request_ids=list(resolved), failed=failed, parent=parent, dataset=name)
