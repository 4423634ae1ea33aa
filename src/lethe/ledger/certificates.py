"""Erasure certificates: one JSON document per fulfilled request, for the subject or the DPO.

A certificate names the request, the subject's keyed hash (never the raw id), when the request
was received and fulfilled, the model version that honours it, and the evidence: metrics, gate
decision, algorithm and parameters (recorded in the ledger when the request was finalized).

An export is all or nothing: every certificate is made (and every refusal raised) before the first
is written, and a write that fails removes the ones this export created, so a re-run starts clean.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import PlainSerializer

import lethe
from lethe.errors import LedgerError, LetheError, StorageError
from lethe.ledger.ledger import ErasureRequest, Ledger
from lethe.ledger.schema import FULFILLED
from lethe.storage import delete, exists, join_uri, put_bytes
from lethe.storage.records import Record

CERTIFICATE_FORMAT = "lethe-erasure-certificate/1"
#: What `samples` says of a request for every sample of its subject (else: how many ids it named).
ALL_SAMPLES = "all samples of the subject"
#: A time as certificates have always written it (`datetime.isoformat()`: "+00:00", not "Z").
IsoTime = Annotated[datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str)]


#: Words for a request whose forgetting was judged by the population attack alone.
POPULATION_ONLY = ("tested by a population membership attack only (no reference models for the version): "
                   "weak evidence; it does not see a person's memorised images")


def membership_evidence(gate: dict[str, Any], request_id: str) -> dict[str, Any]:
    """This request's membership outcome and evidence from the gate's record: the per-example test's
    outcome, its sentence and its numbers per FPR (the run's, under "all", when the run was evaluated
    as one request); with the population attack only, words saying that it is weak."""
    test = gate.get("membership_test")
    if test is None:
        return {"test": None}
    if test != "per-example":
        return {"test": test, "outcome": None, "evidence": POPULATION_ONLY}
    per_request = gate.get("requests") or {}
    scope, entry = "this request's samples", per_request.get(request_id)
    if entry is None and "all" in per_request:
        scope, entry = "all samples of the run together", per_request["all"]
    if entry is None:
        return {"test": test, "outcome": None,
                "evidence": "the run's evaluation recorded nothing for this request"}
    return {"test": test, "scope": scope, "outcome": entry.get("outcome"), "evidence": entry.get("summary"),
            "per_fpr": entry.get("fpr", {})}


def own_gate(gate: dict[str, Any], request_id: str) -> dict[str, Any]:
    """The gate's record without what it says about the run's other requests (their ids and outcomes)."""
    others = [rid for rid in (gate.get("requests") or {}) if rid not in (request_id, "all")]

    def about_other(line: Any) -> bool:
        return any(str(line).startswith(f"request {rid}:") for rid in others)

    kept = {k: v for k, v in gate.items() if k != "requests"}
    for key in ("reasons", "notes"):
        if isinstance(kept.get(key), list):
            kept[key] = [line for line in kept[key] if not about_other(line)]
    return kept


#: What a certificate keeps of each rung of the ladder (the cost and verdict; the request's own outcome).
RUNG_KEYS = ("rung", "method", "decision", "share_of_recipe", "sample_steps", "seconds", "stopped")


def request_rungs(ladder: Sequence[dict[str, Any]], request_id: str) -> list[dict[str, Any]]:
    """Each rung that made the version, with this request's outcome after it (not the others')."""
    rungs = []
    for rung in ladder:
        kept = {key: rung[key] for key in RUNG_KEYS if rung.get(key) is not None}
        outcome = (rung.get("requests") or {}).get(request_id)
        if outcome is not None:
            kept["outcome"] = outcome
        rungs.append(kept)
    return rungs


def removed_by(rungs: Sequence[dict[str, Any]]) -> str | None:
    """The first rung after which the request's samples were no longer `still_flagged`; None when no
    rung found them flagged (nothing to remove: `not_memorised`, ...) or they still are."""
    outcomes = [(str(r.get("rung")), r.get("outcome")) for r in rungs]
    if not any(outcome == "still_flagged" for _, outcome in outcomes):
        return None
    seen_flagged = False
    for rung, outcome in outcomes:
        seen_flagged = seen_flagged or outcome == "still_flagged"
        if seen_flagged and outcome is not None and outcome != "still_flagged":
            return rung
    return None


class ErasureCertificate(Record):
    """One fulfilled request's certificate (the subject's keyed hash, never the raw id)."""

    FORMAT: ClassVar[str] = CERTIFICATE_FORMAT
    WHAT: ClassVar[str] = "a lethe erasure certificate"
    ERROR: ClassVar[type[LetheError]] = LedgerError
    JSON_INDENT: ClassVar[int] = 2  # the layout certificates always had
    SORT_KEYS: ClassVar[bool] = True

    request_id: str
    subject_hash: str
    subject_hash_algorithm: str = "HMAC-SHA256"
    subject_hash_scheme: str
    samples: int | str  # how many sample ids the request named, or ALL_SAMPLES
    # How the run resolved the request: the samples it forgot, and the request's ids that name no
    # sample of the data (the model never saw them: nothing to forget). None: not recorded.
    samples_forgotten: int | None = None
    sample_ids_not_in_data: int | None = None
    received_at: IsoTime
    deadline: IsoTime
    fulfilled_at: IsoTime
    within_deadline: bool
    model_name: str | None = None
    model_version: str | None = None
    run_id: str | None = None
    metrics: dict[str, Any] = {}
    gate: dict[str, Any] = {}
    membership: dict[str, Any] = {}
    review: dict[str, Any] | None = None
    algorithm: str | None = None
    parameters: dict[str, Any] = {}
    lethe_version: str = lethe.__version__
    #: The ladder's rungs that made the version, each with its cost and this request's outcome after it,
    #: and the rung that removed the person (absent from certificates of runs before the ladder).
    rungs: list[dict[str, Any]] = []
    removed_by: str | None = None

    def to_fields(self) -> dict[str, Any]:
        fields = super().to_fields()
        for key in ("rungs", "removed_by"):  # a run without a ladder writes what it always wrote
            if not fields.get(key):
                fields.pop(key, None)
        return fields

    @classmethod
    def of(cls, request: ErasureRequest) -> ErasureCertificate:
        """The certificate of a fulfilled request (anything else is a `LedgerError`)."""
        if request.state != FULFILLED or request.fulfilled_at is None:
            raise LedgerError(f"request {request.id} is {request.state}: "
                              "only a fulfilled request has a certificate")
        outcome = request.outcome or {}
        resolution = outcome.get("resolution") or {}
        gate = outcome.get("gate") or {}
        return cls(
            request_id=request.id, subject_hash=request.subject_hash,
            subject_hash_scheme=request.subject_hash_scheme,
            samples=len(request.sample_ids) if request.sample_ids else ALL_SAMPLES,
            samples_forgotten=resolution.get("forgotten"),
            sample_ids_not_in_data=resolution.get("not_in_data"),
            received_at=request.received_at, deadline=request.deadline, fulfilled_at=request.fulfilled_at,
            within_deadline=request.fulfilled_at <= request.deadline, model_name=outcome.get("model_name"),
            model_version=request.model_version, run_id=request.run_id, metrics=outcome.get("metrics", {}),
            gate=own_gate(gate, request.id), membership=membership_evidence(gate, request.id),
            review=outcome.get("review"), algorithm=outcome.get("algorithm"),
            parameters=outcome.get("parameters", {}), lethe_version=lethe.__version__,
            rungs=(rungs := request_rungs(outcome.get("ladder") or [], request.id)),
            removed_by=removed_by(rungs))


def certificate(request: ErasureRequest) -> dict[str, Any]:
    """The certificate of a fulfilled request, as the JSON fields its file holds."""
    return ErasureCertificate.of(request).to_fields()


def _encoded(request: ErasureRequest) -> bytes:
    return ErasureCertificate.of(request).to_bytes()


def write_certificate(request: ErasureRequest, out_uri: str) -> str:
    """Write `<out_uri>/<request id>.json` (with its sha256 sidecar); returns its URI.

    The one place a certificate file is written (the CLI's export and a run's exit task)."""
    uri = join_uri(out_uri, f"{request.id}.json")
    put_bytes(_encoded(request), uri)
    return uri


def export_certificates(ledger: Ledger, out_uri: str, request_ids: Sequence[str] | None = None) -> list[str]:
    """Write the certificate of every fulfilled request (or of `request_ids`, each of which must be
    fulfilled: anything else raises `LedgerError` and writes nothing); returns the URIs.

    All or nothing: when a write fails, the certificates this call created are removed again (ones
    that existed before are left: a certificate of a fulfilled request never changes) and a
    `StorageError` says so; re-running the export is safe."""
    requests = (ledger.list_requests(FULFILLED) if request_ids is None
                else [ledger.get(request_id) for request_id in request_ids])
    documents = [(join_uri(out_uri, f"{request.id}.json"), _encoded(request)) for request in requests]
    created: list[str] = []
    written = 0
    try:
        for uri, data in documents:
            new = not exists(uri)
            put_bytes(data, uri)
            written += 1
            if new:
                created.append(uri)
    except (LetheError, OSError) as exc:
        left = []
        for uri in created:
            try:
                delete(uri)
            except LetheError:
                left.append(uri)
        undone = ("the certificates it had created were removed" if not left
                  else f"{len(left)} certificate(s) it created could not be removed (they are complete)")
        raise StorageError(f"the export to {out_uri} stopped after {written} of {len(documents)} "
                           f"certificate(s): {exc}; {undone}; re-run the export when the cause is fixed"
                           ) from exc
    return [uri for uri, _ in documents]
