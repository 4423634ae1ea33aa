"""The ledger's tables: erasure requests and their transition history (SQLAlchemy 2)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Request states. Open ones block a second request of the same subject (see Ledger.add).
PENDING = "pending"
IN_PROGRESS = "in_progress"
FULFILLED = "fulfilled"
NEEDS_REVIEW = "needs_review"
FAILED = "failed"
CANCELLED = "cancelled"  # withdrawn by the operator (`lethe request cancel`): final, never run
# Fulfilled: the champion honours the request. Complete: besides, every other copy of the person's data
# that lethe keeps (earlier versions' weights, reference models, caches, shards) is retired
# (`lethe retention apply`). Either goes back to pending when the champion no longer honours it (drift).
COMPLETE = "complete"
STATES = (PENDING, IN_PROGRESS, FULFILLED, NEEDS_REVIEW, FAILED, CANCELLED, COMPLETE)
#: States whose request a champion must honour (a drift check reopens them when it does not).
HONOURED_STATES = (FULFILLED, COMPLETE)
OPEN_STATES = (PENDING, IN_PROGRESS, NEEDS_REVIEW)

# Every legal state change; anything else is refused and changes nothing.
TRANSITIONS: dict[str, frozenset[str]] = {
    # claim; pending -> pending records merged or amended samples; the operator cancels it
    PENDING: frozenset({IN_PROGRESS, PENDING, CANCELLED}),
    # finalize, release, lease expiry; in_progress -> in_progress notes how its ids resolved
    IN_PROGRESS: frozenset({FULFILLED, NEEDS_REVIEW, FAILED, PENDING, IN_PROGRESS}),
    NEEDS_REVIEW: frozenset({FULFILLED, PENDING}),  # reviewer approved / rejected (re-run)
    FAILED: frozenset({PENDING, CANCELLED}),  # an operator retries or amends it, or cancels it
    FULFILLED: frozenset({COMPLETE, PENDING}),  # every copy retired / drift reopened it
    COMPLETE: frozenset({PENDING}),  # drift reopened it
    CANCELLED: frozenset(),
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the ledger stores aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class RequestRow(Base):
    __tablename__ = "erasure_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_hash: Mapped[str] = mapped_column(String(64), index=True)
    # How subject_hash was made (lethe.subject_id); NULL: rows from before schemes were recorded,
    # i.e. the legacy one. Raw ids are never stored, so old rows cannot be rehashed.
    subject_hash_scheme: Mapped[str | None] = mapped_column(String(64))
    sample_ids: Mapped[list[str]] = mapped_column(JSON)  # [] means every sample of the subject
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    run_id: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    model_version: Mapped[str | None] = mapped_column(String(64), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # metrics, gate, algorithm, review
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The subject's hash while no run has claimed the request yet: new samples of the subject merge
    # into it. Unique (NULLs are not), so concurrent `add`s never open two such requests.
    intake_key: Mapped[str | None] = mapped_column(String(64), unique=True)

    transitions: Mapped[list[TransitionRow]] = relationship(
        back_populates="request", order_by="TransitionRow.id", cascade="all, delete-orphan")


class TransitionRow(Base):
    __tablename__ = "request_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("erasure_requests.id"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(16))  # None: the request was received
    to_state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    run_id: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)

    request: Mapped[RequestRow] = relationship(back_populates="transitions")


class DecisionLockRow(Base):
    """A lock on one registered model's review decisions (`lethe.ledger.decision_lock`): the ledger is
    the one store every reviewer's process shares, so two decisions on a model run one after the other.
    `expires_at` frees the lock of a process that died holding it."""

    __tablename__ = "decision_locks"

    name: Mapped[str] = mapped_column(String(250), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
