"""What every part of the ledger shares: the detached views it returns and `LedgerStore`, the
plumbing (one transaction per change, each change recorded in the history, the clock).

The ledger's roles build on it, one module each: `subjects` (the keyed hash of a subject id),
`mentions` (free text that names a subject), `intake` (filing, amending, cancelling, reading),
`leases` (a run's claims), `settlement` (a run's outcome and a reviewer's decision); `Ledger`
(`lethe.ledger.ledger`) is all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lethe.config import DEFAULT_LEASE_SECONDS, settings
from lethe.errors import LedgerError
from lethe.ledger.engine import get_engine, normalize_url, translate_errors
from lethe.ledger.schema import OPEN_STATES, TRANSITIONS, RequestRow, TransitionRow
from lethe.subject_id import LEGACY_SUBJECT_HASH_SCHEME

DEFAULT_DEADLINE_DAYS = 30  # GDPR Art. 12(3): one month from receipt
MAX_DEADLINE_DAYS = 3650  # the law allows three months at most; ten years is a typo, not a deadline
DEFAULT_LEASE = timedelta(seconds=DEFAULT_LEASE_SECONDS)  # LETHE_LEASE_SECONDS overrides it


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ErasureRequest:
    """A request as read from the ledger (detached: changing it changes nothing)."""

    id: str
    subject_hash: str
    subject_hash_scheme: str  # lethe.subject_id: how subject_hash was made
    sample_ids: tuple[str, ...]
    received_at: datetime
    deadline: datetime
    state: str
    run_id: str | None
    claimed_at: datetime | None
    lease_expires_at: datetime | None
    model_version: str | None
    reason: str | None
    outcome: dict[str, Any] | None
    fulfilled_at: datetime | None
    updated_at: datetime
    overdue: bool  # open and past its deadline, when read

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


@dataclass(frozen=True)
class Transition:
    request_id: str
    from_state: str | None
    to_state: str
    at: datetime
    run_id: str | None
    note: str | None


@dataclass(frozen=True)
class AddResult:
    request: ErasureRequest
    created: bool  # False: an open request of this subject already covered it (or took the samples)
    merged_sample_ids: tuple[str, ...] = ()


class LedgerStore:
    """Erasure requests in SQLite (default: `settings().ledger`) or PostgreSQL (by URL): the plumbing."""

    def __init__(self, url: str | None = None, *, subject_key: bytes | None = None,
                 deadline_days: int = DEFAULT_DEADLINE_DAYS, clock: Callable[[], datetime] = utcnow) -> None:
        if not 1 <= deadline_days <= MAX_DEADLINE_DAYS:
            raise LedgerError(f"the deadline must be 1 to {MAX_DEADLINE_DAYS} days, not {deadline_days}")
        self.url = normalize_url(url or settings().ledger)
        self._subject_key = subject_key
        self.deadline_days = deadline_days
        self._clock = clock
        self._engine = get_engine(self.url)

    def _now(self) -> datetime:
        now = self._clock()
        return now if now.tzinfo else now.replace(tzinfo=UTC)

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with translate_errors(self.url), Session(self._engine, expire_on_commit=False) as session, \
                session.begin():
            yield session

    def _view(self, row: RequestRow, now: datetime) -> ErasureRequest:
        return ErasureRequest(
            id=row.id, subject_hash=row.subject_hash,
            subject_hash_scheme=row.subject_hash_scheme or LEGACY_SUBJECT_HASH_SCHEME,
            sample_ids=tuple(row.sample_ids or ()),
            received_at=row.received_at, deadline=row.deadline, state=row.state, run_id=row.run_id,
            claimed_at=row.claimed_at, lease_expires_at=row.lease_expires_at,
            model_version=row.model_version, reason=row.reason,
            outcome=dict(row.outcome) if row.outcome else None, fulfilled_at=row.fulfilled_at,
            updated_at=row.updated_at, overdue=row.state in OPEN_STATES and now > row.deadline)

    @staticmethod
    def _move(session: Session, row: RequestRow, to_state: str, now: datetime, *,
              run_id: str | None = None, note: str | None = None) -> None:
        """The one way a request changes state: a legal transition, recorded in the history."""
        if to_state not in TRANSITIONS.get(row.state, ()):
            raise LedgerError(f"request {row.id} is {row.state}; it cannot become {to_state}")
        session.add(TransitionRow(request_id=row.id, from_state=row.state, to_state=to_state, at=now,
                                  run_id=run_id, note=note))
        row.state = to_state
        row.updated_at = now

    def _load(self, session: Session, request_id: str, *, lock: bool = False) -> RequestRow:
        query = select(RequestRow).where(RequestRow.id == str(request_id))
        row = session.scalars(query.with_for_update() if lock else query).one_or_none()
        if row is None:
            raise LedgerError(f"no erasure request with id {request_id}")
        return row
