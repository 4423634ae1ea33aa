"""The erasure-request ledger: every request, its deadline, its state and how it got there.

States: pending -> in_progress(run id, lease) -> fulfilled(model version) | needs_review | failed;
fulfilled -> complete (every copy retired) and fulfilled | complete -> pending (drift: `retirement`).
An operator amends a request no run holds (pending, failed -> pending with new sample ids) or cancels
it (pending, failed -> cancelled, final).
Every change is one transaction that also appends to the history; an illegal change raises
LedgerError and changes nothing. Claims are atomic, so two concurrent runs never claim the same
request, and a claim whose lease expired returns to pending (a run that died never loses a request).

`Ledger` is the façade; each role is a module of its own: `store` (plumbing and the views it
returns), `subjects` (HMAC of a subject id), `mentions` (free text naming a subject), `intake`
(filing, amending, cancelling, reading), `leases` (a run's claims), `settlement` (outcomes, review),
`decision_lock` (one review decision at a time per model).
"""

from __future__ import annotations

from lethe.ledger.decision_lock import DecisionLocks
from lethe.ledger.intake import Intake
from lethe.ledger.leases import Leases
from lethe.ledger.mentions import SubjectMentions
from lethe.ledger.retirement import Retirement
from lethe.ledger.settlement import Settlement
from lethe.ledger.store import (
    DEFAULT_DEADLINE_DAYS,
    DEFAULT_LEASE,
    MAX_DEADLINE_DAYS,
    AddResult,
    ErasureRequest,
    Transition,
    utcnow,
)
from lethe.ledger.subjects import hash_subject

# Names other modules imported from here before the roles moved out.
__all__ = ["DEFAULT_DEADLINE_DAYS", "DEFAULT_LEASE", "MAX_DEADLINE_DAYS", "AddResult", "ErasureRequest",
           "Ledger", "Transition", "hash_subject", "utcnow"]


class Ledger(Intake, Leases, Settlement, Retirement, SubjectMentions, DecisionLocks):
    """Erasure requests in SQLite (default: `settings().ledger`) or PostgreSQL (by URL)."""
