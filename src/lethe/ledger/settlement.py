"""How requests end: a run records how it resolved each request it holds and settles them
(fulfilled by a model version, needs review, failed, or released back to pending); a reviewer's
decision settles those that wait for one; an operator retries a failed one.

A run whose lease ran out may still settle its requests as long as no other run has reclaimed them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from lethe.errors import LedgerError
from lethe.ledger.schema import FAILED, FULFILLED, IN_PROGRESS, NEEDS_REVIEW, PENDING, RequestRow
from lethe.ledger.store import ErasureRequest, LedgerStore

#: What settling does to one request's row (it may set fields); returns the history's note.
Settle = Callable[[RequestRow, datetime], str | None]


def _keep(row: RequestRow, outcome: dict[str, Any]) -> dict[str, Any]:
    """The run's outcome, with how the run resolved this request (`note_resolution`)."""
    resolution = (row.outcome or {}).get("resolution")
    return {**outcome, "resolution": resolution} if resolution else outcome


class Settlement(LedgerStore):
    def note_resolution(self, request_id: str, *, run_id: str, forgotten: int,
                        not_in_data: Sequence[str], forgotten_ids: Sequence[str] = ()) -> ErasureRequest:
        """Record how the run resolved a request it holds: how many samples it forgets, and which of
        the request's ids name no sample of the data (they cannot be forgotten: the model never saw
        them). Kept in the request's outcome for its certificate, and in its history. `forgotten_ids`:
        the samples themselves (a subject's, from the map), so retention finds the copies holding them."""
        now = self._now()
        resolution = {"forgotten": int(forgotten), "not_in_data": len(not_in_data),
                      "not_in_data_ids": list(not_in_data)}
        if forgotten_ids:
            resolution["forgotten_ids"] = list(forgotten_ids)
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

    def _finish(self, request_ids: Sequence[str], run_id: str, to_state: str,
                apply: Settle) -> list[ErasureRequest]:
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
