"""The erasure-request ledger: every request, its deadline, its state and how it got there.

States: pending -> in_progress(run id, lease) -> fulfilled(model version) | needs_review | failed.
An operator amends a request no run holds (pending, failed -> pending with new sample ids) or cancels
it (pending, failed -> cancelled, final).
Every change is one transaction that also appends to the history; an illegal change raises
LedgerError and changes nothing. Claims are atomic (PostgreSQL: SELECT ... FOR UPDATE SKIP
LOCKED; SQLite: BEGIN IMMEDIATE), so two concurrent runs never claim the same request, and a
claim whose lease expired returns to pending at the next claim or collection (a run that died never
loses a request). A working run renews its lease (`renew`, `LeaseHeartbeat`); a run whose lease ran
out may still settle its requests as long as no other run has reclaimed them.

A second request for a subject that has an open one (pending, in_progress, needs_review) is
idempotent: it returns the open request. Sample ids it adds are merged into the subject's request
that no run has claimed yet, if there is one; a claimed request's samples are frozen (a run
resolved them), so new samples then open one new pending request that holds only them. `[]` means
every sample of the subject (resolved when a run collects the request); it covers any sample id.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.orm import Session

from lethe.config import DEFAULT_LEASE_SECONDS, settings
from lethe.errors import LedgerError
from lethe.ledger.engine import get_engine, normalize_url, translate_errors
from lethe.ledger.schema import (
    CANCELLED,
    FAILED,
    FULFILLED,
    IN_PROGRESS,
    NEEDS_REVIEW,
    OPEN_STATES,
    PENDING,
    STATES,
    TRANSITIONS,
    RequestRow,
    TransitionRow,
)
from lethe.subject_id import (
    LEGACY_SUBJECT_HASH_SCHEME,
    SUBJECT_HASH_SCHEME,
    SUBJECT_HASH_SCHEMES,
    normalize_subject,
)

DEFAULT_DEADLINE_DAYS = 30  # GDPR Art. 12(3): one month from receipt
MAX_DEADLINE_DAYS = 3650  # the law allows three months at most; ten years is a typo, not a deadline
DEFAULT_LEASE = timedelta(seconds=DEFAULT_LEASE_SECONDS)  # LETHE_LEASE_SECONDS overrides it


def utcnow() -> datetime:
    return datetime.now(UTC)


def hash_subject(subject: str, key: bytes, scheme: str = SUBJECT_HASH_SCHEME) -> str:
    """The subject's keyed hash (HMAC-SHA256, hex) under `scheme`: the only form of a subject id lethe
    stores. The current scheme hashes the normal form (`lethe.subject_id.normalize_subject`)."""
    subject = normalize_subject(subject, scheme)
    if not subject:
        raise LedgerError("a subject id must not be empty")
    try:
        encoded = subject.encode()
    except UnicodeEncodeError:  # undecodable bytes from a command line or file (lone surrogates)
        raise LedgerError("a subject id must be valid UTF-8 text") from None
    return hmac.new(key, encoded, hashlib.sha256).hexdigest()


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


def _keep(row: RequestRow, outcome: dict[str, Any]) -> dict[str, Any]:
    """The run's outcome, with how the run resolved this request (`Ledger.note_resolution`)."""
    resolution = (row.outcome or {}).get("resolution")
    return {**outcome, "resolution": resolution} if resolution else outcome


def _lease(lease: timedelta | None) -> timedelta:
    return timedelta(seconds=settings().lease_seconds) if lease is None else lease


class Ledger:
    """Erasure requests in SQLite (default: `settings().ledger`) or PostgreSQL (by URL)."""

    def __init__(self, url: str | None = None, *, subject_key: bytes | None = None,
                 deadline_days: int = DEFAULT_DEADLINE_DAYS, clock: Callable[[], datetime] = utcnow) -> None:
        if not 1 <= deadline_days <= MAX_DEADLINE_DAYS:
            raise LedgerError(f"the deadline must be 1 to {MAX_DEADLINE_DAYS} days, not {deadline_days}")
        self.url = normalize_url(url or settings().ledger)
        self._subject_key = subject_key
        self.deadline_days = deadline_days
        self._clock = clock
        self._engine = get_engine(self.url)

    # --- plumbing ---------------------------------------------------------------------------

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

    def _key(self) -> bytes:
        return self._subject_key if self._subject_key is not None else settings().require_subject_key()

    def subject_hash(self, subject: str) -> str:
        """The subject's hash under the current scheme (what a new request stores)."""
        return hash_subject(subject, self._key())

    def subject_hashes(self, subject: str) -> dict[str, str]:
        """The subject's hash under every scheme, current first: lookups try them all, since rows
        stored under an older scheme cannot be rehashed (the raw id is never stored)."""
        key = self._key()
        return {scheme: hash_subject(subject, key, scheme) for scheme in SUBJECT_HASH_SCHEMES}

    def mentions_subject(self, text: str, *, max_words: int = 4) -> bool:
        """Whether `text` holds the id of a subject the ledger knows (under any scheme): every run
        of up to `max_words` words, with and without surrounding punctuation, is hashed and looked up.
        For free text that leaves the ledger (a reviewer's name or reason)."""
        words = str(text).split()[:400]
        candidates: set[str] = set()
        for start in range(len(words)):
            for end in range(start + 1, min(start + max_words, len(words)) + 1):
                phrase = " ".join(words[start:end])
                candidates.update({phrase, phrase.strip(".,;:!?()[]{}<>\"'`")})
        key = self._key()
        hashes: set[str] = set()
        for candidate in candidates:
            for scheme in SUBJECT_HASH_SCHEMES:
                with contextlib.suppress(LedgerError):  # empty, or not text: no subject's id
                    hashes.add(hash_subject(candidate, key, scheme))
        if not hashes:
            return False
        with self._transaction() as session:
            found = session.scalars(select(RequestRow.id).where(RequestRow.subject_hash.in_(sorted(hashes)))
                                    .limit(1)).first()
        return found is not None

    # --- requests ---------------------------------------------------------------------------

    def add(self, subject: str, sample_ids: Sequence[str] = (), *,
            received_at: datetime | None = None,
            check: Callable[[Sequence[str], Sequence[str]], None] | None = None) -> AddResult:
        """Record an erasure request (idempotent per subject while one is open; see the module doc).

        `check(subject_hashes, sample_ids)` runs after the request itself was validated and before
        anything is stored; it raises to refuse the request (`lethe.steps.collect.check_request`:
        ids and subject resolved as a run would)."""
        subject_hashes = self.subject_hashes(subject)
        wanted = list(dict.fromkeys(str(s).strip() for s in sample_ids if str(s).strip()))
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
              check: Callable[[Sequence[str], Sequence[str]], None] | None = None) -> ErasureRequest:
        """Replace the sample ids of a request no run holds (pending, or failed: then it is pending
        again). `check` as for `add`, with the request's subject hash; it runs before any change."""
        wanted = list(dict.fromkeys(str(s).strip() for s in sample_ids if str(s).strip()))
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

    def note_resolution(self, request_id: str, *, run_id: str, forgotten: int,
                        not_in_data: Sequence[str]) -> ErasureRequest:
        """Record how the run resolved a request it holds: how many samples it forgets, and which of
        the request's ids name no sample of the data (they cannot be forgotten: the model never saw
        them). Kept in the request's outcome for its certificate, and in its history."""
        now = self._now()
        resolution = {"forgotten": int(forgotten), "not_in_data": len(not_in_data),
                      "not_in_data_ids": list(not_in_data)}
        with self._transaction() as session:
            row = self._load(session, request_id, lock=True)
            if row.state != IN_PROGRESS or row.run_id != run_id:
                raise LedgerError(f"request {row.id} is not in progress under run {run_id}")
            if (row.outcome or {}).get("resolution") != resolution:  # a retried task notes it once
                note = f"resolved: {forgotten} sample(s) to forget"
                if not_in_data:
                    note += f"; {len(not_in_data)} sample id(s) not in the data, nothing to forget for them"
                self._move(session, row, IN_PROGRESS, now, run_id=run_id, note=note)
                row.outcome = {**(row.outcome or {}), "resolution": resolution}
            return self._view(row, now)

    def requests_of_run(self, run_id: str) -> list[ErasureRequest]:
        """Every request a run changed (its history names the run), whatever its state now."""
        now = self._now()
        with self._transaction() as session:
            ids = select(TransitionRow.request_id).where(TransitionRow.run_id == run_id)
            rows = session.scalars(select(RequestRow).where(RequestRow.id.in_(ids))
                                   .order_by(RequestRow.received_at, RequestRow.id))
            return [self._view(row, now) for row in rows]

    def for_run(self, run_id: str) -> list[ErasureRequest]:
        """The requests a run currently holds (in progress under its claim)."""
        now = self._now()
        with self._transaction() as session:
            rows = session.scalars(select(RequestRow).where(RequestRow.run_id == run_id,
                                                            RequestRow.state == IN_PROGRESS)
                                   .order_by(RequestRow.deadline, RequestRow.id))
            return [self._view(row, now) for row in rows]

    # --- a run's life -----------------------------------------------------------------------

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
        if lease <= timedelta(0):
            raise LedgerError("a claim's lease must be positive")
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
        if lease <= timedelta(0):
            raise LedgerError("a claim's lease must be positive")
        now = self._now()
        with self._transaction() as session:
            rows = list(session.scalars(select(RequestRow).where(
                RequestRow.run_id == run_id, RequestRow.state == IN_PROGRESS,
                RequestRow.lease_expires_at >= now).with_for_update()))
            for row in rows:
                row.lease_expires_at = now + lease
            return len(rows)

    def _finish(self, request_ids: Sequence[str], run_id: str, to_state: str,
                apply: Callable[[RequestRow, datetime], str | None]) -> list[ErasureRequest]:
        if not request_ids:
            raise LedgerError("no request ids given")
        now = self._now()
        with self._transaction() as session:
            rows = [self._load(session, rid, lock=True) for rid in dict.fromkeys(request_ids)]
            for row in rows:
                if row.state != IN_PROGRESS:
                    raise LedgerError(f"request {row.id} is {row.state}, not in progress under run {run_id}; "
                                      "nothing was changed")
                if row.run_id != run_id:
                    raise LedgerError(f"request {row.id} is held by run {row.run_id}, not by run {run_id}; "
                                      "nothing was changed")
                # A lease that ran out but that no run reclaimed yet is still this run's: the lease
                # says when another run may take the request over, and none did (reclaiming
                # clears run_id in the same locked rows), so the work done is settled, not redone.
            for row in rows:
                note = apply(row, now)
                self._move(session, row, to_state, now, run_id=run_id, note=note)
            return [self._view(row, now) for row in rows]

    def fulfil(self, request_ids: Sequence[str], *, run_id: str, model_version: str,
               outcome: dict[str, Any]) -> list[ErasureRequest]:
        """The run's model version honours these requests (it passed the gate)."""
        def apply(row: RequestRow, now: datetime) -> str:
            row.model_version, row.outcome, row.fulfilled_at = str(model_version), _keep(row, outcome), now
            row.reason = row.lease_expires_at = None
            return f"honoured by model version {model_version}"
        return self._finish(request_ids, run_id, FULFILLED, apply)

    def mark_needs_review(self, request_ids: Sequence[str], *, run_id: str, model_version: str,
                          outcome: dict[str, Any], reason: str) -> list[ErasureRequest]:
        """The candidate failed the gate: a reviewer decides (`resolve_review`)."""
        def apply(row: RequestRow, _now: datetime) -> str:
            row.model_version, row.outcome, row.reason = str(model_version), _keep(row, outcome), reason
            row.lease_expires_at = None
            return f"model version {model_version} awaits review: {reason}"
        return self._finish(request_ids, run_id, NEEDS_REVIEW, apply)

    def fail(self, request_ids: Sequence[str], *, run_id: str, reason: str) -> list[ErasureRequest]:
        def apply(row: RequestRow, _now: datetime) -> str:
            row.reason, row.lease_expires_at = reason, None
            return reason
        return self._finish(request_ids, run_id, FAILED, apply)

    def release(self, request_ids: Sequence[str], *, run_id: str, reason: str) -> list[ErasureRequest]:
        """Give claimed requests back (pending) when a run stops without an outcome."""
        def apply(row: RequestRow, _now: datetime) -> str:
            row.run_id = row.claimed_at = row.lease_expires_at = None
            row.reason = f"released: {reason}"  # shown with the request until a run settles it
            return row.reason
        return self._finish(request_ids, run_id, PENDING, apply)

    def resolve_review(self, model_version: str, *, approved: bool, by: str,
                       reason: str) -> list[ErasureRequest]:
        """A reviewer's decision on a version: its needs_review requests become fulfilled or pending."""
        if not by.strip() or not reason.strip():
            raise LedgerError("a review decision needs a reviewer name and a reason")
        now = self._now()
        with self._transaction() as session:
            rows = list(session.scalars(select(RequestRow).where(
                RequestRow.model_version == str(model_version), RequestRow.state == NEEDS_REVIEW)
                .with_for_update()))
            for row in rows:
                review = {"decision": "approved" if approved else "rejected", "by": by, "reason": reason,
                          "at": now.isoformat()}
                row.outcome = {**(row.outcome or {}), "review": review}
                if approved:
                    self._move(session, row, FULFILLED, now, note=f"approved by {by}: {reason}")
                    row.fulfilled_at = now
                else:
                    self._move(session, row, PENDING, now, note=f"rejected by {by}: {reason}")
                    row.model_version = row.run_id = row.claimed_at = None
                    row.reason = f"version {model_version} rejected: {reason}"
            return [self._view(row, now) for row in rows]

    def retry(self, request_id: str, *, note: str = "retried") -> ErasureRequest:
        """A failed request back to pending."""
        now = self._now()
        with self._transaction() as session:
            row = self._load(session, request_id, lock=True)
            if row.state != FAILED:
                raise LedgerError(f"request {row.id} is {row.state}; only a failed request can be retried")
            self._move(session, row, PENDING, now, note=note)
            row.run_id = row.claimed_at = None
            return self._view(row, now)
