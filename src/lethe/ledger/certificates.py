"""Erasure certificates: one JSON document per fulfilled request, for the subject or the DPO.

A certificate names the request, the subject's keyed hash (never the raw id), when the request
was received and fulfilled, the model version that honours it, and the evidence: metrics, gate
decision, algorithm and parameters (recorded in the ledger when the request was finalized).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import lethe
from lethe.errors import LedgerError
from lethe.ledger.ledger import ErasureRequest, Ledger
from lethe.ledger.schema import FULFILLED
from lethe.storage import join_uri, put_bytes

CERTIFICATE_FORMAT = "lethe-erasure-certificate/1"


def certificate(request: ErasureRequest) -> dict[str, Any]:
    if request.state != FULFILLED or request.fulfilled_at is None:
        raise LedgerError(f"request {request.id} is {request.state}: "
                          "only a fulfilled request has a certificate")
    outcome = request.outcome or {}
    return {
        "format": CERTIFICATE_FORMAT,
        "request_id": request.id,
        "subject_hash": request.subject_hash,
        "subject_hash_algorithm": "HMAC-SHA256",
        "samples": "all samples of the subject" if not request.sample_ids else len(request.sample_ids),
        "received_at": request.received_at.isoformat(),
        "deadline": request.deadline.isoformat(),
        "fulfilled_at": request.fulfilled_at.isoformat(),
        "within_deadline": request.fulfilled_at <= request.deadline,
        "model_name": outcome.get("model_name"),
        "model_version": request.model_version,
        "run_id": request.run_id,
        "metrics": outcome.get("metrics", {}),
        "gate": outcome.get("gate", {}),
        "review": outcome.get("review"),
        "algorithm": outcome.get("algorithm"),
        "parameters": outcome.get("parameters", {}),
        "lethe_version": lethe.__version__,
    }


def write_certificate(request: ErasureRequest, out_uri: str) -> str:
    """Write `<out_uri>/<request id>.json` (with its sha256 sidecar); returns its URI.

    The one place a certificate file is written (the CLI's export and a run's exit task)."""
    uri = join_uri(out_uri, f"{request.id}.json")
    put_bytes((json.dumps(certificate(request), indent=2, sort_keys=True) + "\n").encode(), uri)
    return uri


def export_certificates(ledger: Ledger, out_uri: str, request_ids: Sequence[str] | None = None) -> list[str]:
    """Write the certificate of every fulfilled request (or of `request_ids`, each of which must be
    fulfilled: anything else raises `LedgerError`); returns the URIs."""
    requests = (ledger.list_requests(FULFILLED) if request_ids is None
                else [ledger.get(request_id) for request_id in request_ids])
    return [write_certificate(request, out_uri) for request in requests]
