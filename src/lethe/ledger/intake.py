"""Filing requests, changing those no run holds (amend, cancel), and reading them.

A second request for a subject that has an open one (pending, in_progress, needs_review) is
idempotent: it returns the open request. Sample ids it adds are merged into the subject's request
that no run has claimed yet, if there is one; a claimed request's samples are frozen (a run
resolved them), so new samples then open one new pending request that holds only them. `[]` means
every sample of the subject (resolved when a run collects the request); it covers any sample id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from lethe.errors import LedgerError
from lethe.ledger.schema import (
    CANCELLED,
    FAILED,
    IN_PROGRESS,
    OPEN_STATES,
    PENDING,
    STATES,
    RequestRow,
    TransitionRow,
)
from lethe.ledger.store import AddResult, ErasureRequest, Transition
from lethe.ledger.subjects import SubjectHashes
from lethe.subject_id import SUBJECT_HASH_SCHEME

#: `check(subject_hashes, sample_ids)`: raises to refuse a request before anything is stored.
FilingCheck = Callable[[Sequence[str], Sequence[str]], None]


def _sample_ids(sample_ids: Sequence[str]) -> list[str]:
    """The ids, trimmed, without blanks or repeats, in their order."""
    return list(dict.fromkeys(str(s).strip() for s in sample_ids if str(s).strip()))


class Intake(SubjectHashes):
    def add(self, subject: str, sample_ids: Sequence[str] = (), *,
            received_at: datetime | None = None, check: FilingCheck | None = None) -> AddResult:
        """Record an erasure request (idempotent per subject while one is open; see the module doc).

        `check(subject_hashes, sample_ids)` runs after the request itself was validated and before
        anything is stored; it raises to refuse the request (`lethe.steps.collect.check_request`:
        ids and subject resolved as a run would)."""
        subject_hashes = self.subject_hashes(subject)
        wanted = _sample_ids(sample_ids)
        received = received_at or self._now()
        try:  # stored in UTC, with its deadline: both must be representable
            received = received.replace(tzinfo=UTC) if received.tzinfo is None else received.astimezone(UTC)
            received + timedelta(days=self.deadline_days)
        except OverflowError:
            raise LedgerError(f"received time {received_at} or its deadline is out of range") from None
        if received > self._now() + timedelta(minutes=5):
            raise LedgerError(f"a request cannot be received in the future ({received.isoformat()})")
        if check is not None:
            with self._transaction() as session:  # a ledger that cannot be read refuses first, as ever
                session.execute(select(RequestRow.id).limit(1))
            check(list(subject_hashes.values()), wanted)
        for attempt in range(2):
            try:
                return self._add(subject_hashes, wanted, received)
            except LedgerError as exc:
                # A concurrent `add` of the same subject won the unique intake key: read its request.
                if attempt or not isinstance(exc.__cause__, SQLIntegrityError):
                    raise
        raise AssertionError("unreachable")

    def _add(self, subject_hashes: dict[str, str], wanted: list[str], received: datetime) -> AddResult:
        now = self._now()
        subject_hash = subject_hashes[SUBJECT_HASH_SCHEME]
        every_hash = set(subject_hashes.values())
        with self._transaction() as session:
            # Open requests filed under an older scheme are the same subject's: they are found too.
            open_rows = list(session.scalars(
                select(RequestRow).where(RequestRow.subject_hash.in_(sorted(every_hash)),
                                         RequestRow.state.in_(OPEN_STATES))
                .order_by(RequestRow.received_at).with_for_update()))
            covers_all = any(not row.sample_ids for row in open_rows)
            known = {sample for row in open_rows for sample in row.sample_ids}
            new = [] if covers_all else [s for s in wanted if s not in known]
            everything = not wanted and not covers_all  # a request for all samples, not yet covered
            pending = next((row for row in open_rows if row.intake_key in every_hash), None)
            if open_rows and not new and not everything:
                return AddResult(self._view(pending or open_rows[0], now), created=False)
            if pending is not None:
                pending.sample_ids = [] if everything else [*pending.sample_ids, *new]
                note = ("merged: every sample of the subject" if everything
                        else f"merged {len(new)} sample ids")
                self._move(session, pending, PENDING, now, note=note)
                return AddResult(self._view(pending, now), created=False, merged_sample_ids=tuple(new))
            row = RequestRow(
                id=str(uuid.uuid4()), subject_hash=subject_hash, subject_hash_scheme=SUBJECT_HASH_SCHEME,
                sample_ids=[] if everything else new,
                received_at=received, deadline=received + timedelta(days=self.deadline_days),
                state=PENDING, updated_at=now, intake_key=subject_hash)
            session.add(row)
            note = f"follows open request {open_rows[0].id}" if open_rows else None
            session.add(TransitionRow(request_id=row.id, from_state=None, to_state=PENDING, at=now,
                                      note=note))
            session.flush()
            return AddResult(self._view(row, now), created=True)

    def get(self, request_id: str) -> ErasureRequest:
        with self._transaction() as session:
            return self._view(self._load(session, request_id), self._now())

    def list_requests(self, state: str | None = None) -> list[ErasureRequest]:
        if state is not None and state not in STATES:
            raise LedgerError(f"unknown state {state!r}; expected one of {', '.join(STATES)}")
        query = select(RequestRow).order_by(RequestRow.received_at, RequestRow.id)
        if state is not None:
            query = query.where(RequestRow.state == state)
        now = self._now()
        with self._transaction() as session:
            return [self._view(row, now) for row in session.scalars(query)]

    def history(self, request_id: str) -> list[Transition]:
        with self._transaction() as session:
            row = self._load(session, request_id)
            return [Transition(t.request_id, t.from_state, t.to_state, t.at, t.run_id, t.note)
                    for t in row.transitions]

    def cancel(self, request_id: str, *, reason: str) -> ErasureRequest:
        """Withdraw a request no run holds (pending or failed): it becomes cancelled, for good, and a
        new request of the subject opens a new one."""
        if not str(reason).strip():
            raise LedgerError("cancelling a request needs a reason")
        now = self._now()
        with self._transaction() as session:
            row = self._load(session, request_id, lock=True)
            if row.state not in (PENDING, FAILED):
                held = " (a run holds it: cancel it once the run settled it)" if row.state == IN_PROGRESS \
                    else ""
                raise LedgerError(f"request {row.id} is {row.state}; only a pending or failed request can be "
                                  f"cancelled{held}")
            self._move(session, row, CANCELLED, now, note=f"cancelled: {reason}")
            row.reason = f"cancelled: {reason}"
            row.run_id = row.claimed_at = row.lease_expires_at = row.intake_key = None
            return self._view(row, now)

    def amend(self, request_id: str, sample_ids: Sequence[str], *,
              check: FilingCheck | None = None) -> ErasureRequest:
        """Replace the sample ids of a request no run holds (pending, or failed: then it is pending
        again). `check` as for `add`, with the request's subject hash; it runs before any change."""
        wanted = _sample_ids(sample_ids)
        if not wanted:
            raise LedgerError("an amended request needs at least one sample id")
        now = self._now()
        with self._transaction() as session:
            row = self._load(session, request_id, lock=True)
            if row.state not in (PENDING, FAILED):
                raise LedgerError(f"request {row.id} is {row.state}; only a pending or failed request can be "
                                  "amended")
            if check is not None:
                check([row.subject_hash], wanted)
            before = len(row.sample_ids) if row.sample_ids else "every"
            self._move(session, row, PENDING, now,
                       note=f"amended: {len(wanted)} sample id(s), were {before}")
            row.sample_ids = wanted
            row.run_id = row.claimed_at = row.lease_expires_at = None
            row.reason = None
            return self._view(row, now)
