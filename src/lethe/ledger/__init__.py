"""The erasure-request ledger (SQLAlchemy): SQLite by default, PostgreSQL in production."""

from lethe.ledger.certificates import CERTIFICATE_FORMAT, certificate, export_certificates, write_certificate
from lethe.ledger.engine import dispose_engines
from lethe.ledger.heartbeat import LeaseHeartbeat
from lethe.ledger.ledger import (
    DEFAULT_DEADLINE_DAYS,
    DEFAULT_LEASE,
    AddResult,
    ErasureRequest,
    Ledger,
    Transition,
    hash_subject,
)
from lethe.ledger.schema import (
    CANCELLED,
    COMPLETE,
    FAILED,
    FULFILLED,
    HONOURED_STATES,
    IN_PROGRESS,
    NEEDS_REVIEW,
    OPEN_STATES,
    PENDING,
    STATES,
)

__all__ = [
    "CANCELLED",
    "CERTIFICATE_FORMAT",
    "COMPLETE",
    "DEFAULT_DEADLINE_DAYS",
    "DEFAULT_LEASE",
    "FAILED",
    "FULFILLED",
    "HONOURED_STATES",
    "IN_PROGRESS",
    "NEEDS_REVIEW",
    "OPEN_STATES",
    "PENDING",
    "STATES",
    "AddResult",
    "ErasureRequest",
    "LeaseHeartbeat",
    "Ledger",
    "Transition",
    "certificate",
    "dispose_engines",
    "export_certificates",
    "hash_subject",
    "write_certificate",
]
