"""A run's claims: it takes pending requests under a lease, renews it while it works, and a claim
whose lease expired returns to pending at the next claim or collection (a run that died never loses
a request). Claims are atomic (PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED; SQLite: BEGIN
IMMEDIATE), so two concurrent runs never claim the same request.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from lethe.config import settings
from lethe.errors import LedgerError
from lethe.ledger.schema import IN_PROGRESS, PENDING, RequestRow, TransitionRow
from lethe.ledger.store import ErasureRequest, LedgerStore


def _lease(lease: timedelta | None) -> timedelta:
    lease = timedelta(seconds=settings().lease_seconds) if lease is None else lease
    if lease <= timedelta(0):
        raise LedgerError("a claim's lease must be positive")
    return lease


class Leases(LedgerStore):
    def _expire(self, session: Session, now: datetime) -> list[str]:
        rows = list(session.scalars(
            select(RequestRow).where(RequestRow.state == IN_PROGRESS, RequestRow.lease_expires_at < now)
            .order_by(RequestRow.id).with_for_update(skip_locked=True)))
        for row in rows:
            self._move(session, row, PENDING, now, run_id=row.run_id,
                       note=f"lease of run {row.run_id} expired at {row.lease_expires_at.isoformat()}")
            row.run_id = row.claimed_at = row.lease_expires_at = None
        return [row.id for row in rows]

    def reclaim_expired(self) -> list[str]:
        """Return every in-progress request whose lease expired to pending; returns their ids."""
        with self._transaction() as session:
            return self._expire(session, self._now())

    def claim(self, run_id: str, *, limit: int | None = None, lease: timedelta | None = None,
              request_ids: Sequence[str] | None = None) -> list[ErasureRequest]:
        """Atomically take pending requests (earliest deadline first) for `run_id`.

        Expired claims are returned to pending first, so they are claimable again here. `lease`:
        default LETHE_LEASE_SECONDS; a working run renews it (`renew`, `LeaseHeartbeat`).
        """
        if not run_id:
            raise LedgerError("a claim needs a run id")
        lease = _lease(lease)
        if limit is not None and limit < 1:
            raise LedgerError(f"the claim limit must be at least 1, not {limit}")
        now = self._now()
        with self._transaction() as session:
            self._expire(session, now)
            query = (select(RequestRow).where(RequestRow.state == PENDING)
                     .order_by(RequestRow.deadline, RequestRow.id).limit(limit)
                     .with_for_update(skip_locked=True))
            if request_ids is not None:
                query = query.where(RequestRow.id.in_([str(i) for i in request_ids]))
            rows = list(session.scalars(query))
            for row in rows:
                self._move(session, row, IN_PROGRESS, now, run_id=run_id,
                           note=f"lease until {(now + lease).isoformat()}")
                row.run_id, row.claimed_at, row.lease_expires_at = run_id, now, now + lease
                row.intake_key = None  # its samples are frozen from now on
            return [self._view(row, now) for row in rows]

    def renew(self, run_id: str, *, lease: timedelta | None = None) -> int:
        """Extend the lease of every request `run_id` still validly holds (a heartbeat); returns how many.

        A lease that already expired is not revived: another run may be reclaiming it right now."""
        lease = _lease(lease)
        now = self._now()
        with self._transaction() as session:
            rows = list(session.scalars(select(RequestRow).where(
                RequestRow.run_id == run_id, RequestRow.state == IN_PROGRESS,
                RequestRow.lease_expires_at >= now).with_for_update()))
            for row in rows:
                row.lease_expires_at = now + lease
            return len(rows)

    def for_run(self, run_id: str) -> list[ErasureRequest]:
        """The requests a run currently holds (in progress under its claim)."""
        now = self._now()
        with self._transaction() as session:
            rows = session.scalars(select(RequestRow).where(RequestRow.run_id == run_id,
                                                            RequestRow.state == IN_PROGRESS)
                                   .order_by(RequestRow.deadline, RequestRow.id))
            return [self._view(row, now) for row in rows]

    def requests_of_run(self, run_id: str) -> list[ErasureRequest]:
        """Every request a run changed (its history names the run), whatever its state now."""
        now = self._now()
        with self._transaction() as session:
            ids = select(TransitionRow.request_id).where(TransitionRow.run_id == run_id)
            rows = session.scalars(select(RequestRow).where(RequestRow.id.in_(ids))
                                   .order_by(RequestRow.received_at, RequestRow.id))
            return [self._view(row, now) for row in rows]
