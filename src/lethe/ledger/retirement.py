"""After fulfilment: a request becomes complete once every copy of the person's data that lethe keeps is
retired (`lethe.retention`), and a fulfilled or complete request goes back to pending when the champion
no longer honours it (drift: an alias moved by hand, a version restored).

Transitions (`lethe.ledger.schema.TRANSITIONS`): fulfilled -> complete (retention), fulfilled | complete ->
pending (drift). The next run forgets a reopened request again from the current champion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lethe.errors import LedgerError
from lethe.ledger.schema import COMPLETE, FULFILLED, HONOURED_STATES, PENDING
from lethe.ledger.store import ErasureRequest, LedgerStore


class Retirement(LedgerStore):
    def complete(self, request_id: str, *, retired: Sequence[dict[str, Any]]) -> ErasureRequest:
        """Every copy of a fulfilled request is retired: it becomes complete, with the copies (what, where,
        when retired) kept in its outcome for the certificate. A complete request is left as it is."""
        now = self._now()
        with self._transaction() as session:
            row = self._load(session, request_id, lock=True)
            if row.state == COMPLETE:
                return self._view(row, now)
            if row.state != FULFILLED:
                raise LedgerError(f"request {row.id} is {row.state}; only a fulfilled request can be "
                                  "complete")
            self._move(session, row, COMPLETE, now, note=f"every copy retired ({len(retired)} copies)")
            row.outcome = {**(row.outcome or {}), "retention": {"completed_at": now.isoformat(),
                                                                "copies": [dict(c) for c in retired]}}
            return self._view(row, now)

    def reopen(self, request_ids: Sequence[str], *, reason: str) -> list[ErasureRequest]:
        """The champion does not honour these fulfilled or complete requests: back to pending, with the
        reason (shown with the request until a run settles it again). Others are left as they are."""
        if not str(reason).strip():
            raise LedgerError("reopening a request needs a reason")
        now = self._now()
        with self._transaction() as session:
            rows = [self._load(session, rid, lock=True) for rid in dict.fromkeys(request_ids)]
            moved = []
            for row in rows:
                if row.state not in HONOURED_STATES:
                    continue
                honoured_by = row.model_version
                self._move(session, row, PENDING, now, note=f"reopened: {reason}")
                row.outcome = {**(row.outcome or {}), "reopened": {"at": now.isoformat(), "reason": reason,
                                                                   "was_honoured_by": honoured_by}}
                row.reason = f"reopened: {reason}"
                row.model_version = row.run_id = row.claimed_at = row.lease_expires_at = None
                row.fulfilled_at = None
                moved.append(self._view(row, now))
            return moved
