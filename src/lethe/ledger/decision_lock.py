"""One review decision at a time per registered model, across processes and machines.

MLflow has no compare-and-set on an alias, so two reviewers approving sibling versions at once could
both see the old champion and both fulfil their requests. The ledger is the store every reviewer
shares: a row per model (`decision_locks`) is the lock; whoever inserts or takes over an expired row
holds it, decides (MLflow, then the ledger) and deletes it. A holder that dies frees it at `expires_at`.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from lethe.errors import LedgerError
from lethe.ledger.schema import DecisionLockRow
from lethe.ledger.store import LedgerStore

#: Longer than any decision takes (a few MLflow calls and one ledger transaction).
DECISION_HOLD = timedelta(seconds=120)


class DecisionLocks(LedgerStore):
    def _try_lock(self, name: str, holder: str, hold: timedelta) -> bool:
        now = self._now()
        try:
            with self._transaction() as session:
                row = session.get(DecisionLockRow, name, with_for_update=True)
                if row is None:
                    session.add(DecisionLockRow(name=name, holder=holder, expires_at=now + hold))
                    return True
                if row.expires_at < now:  # its holder died: take it over
                    row.holder, row.expires_at = holder, now + hold
                    return True
                return False
        except LedgerError as exc:
            if isinstance(exc.__cause__, SQLIntegrityError):  # another process inserted it first
                return False
            raise

    @contextmanager
    def decision_lock(self, model_name: str, *, wait_seconds: float = DECISION_HOLD.total_seconds() + 10,
                      hold: timedelta = DECISION_HOLD) -> Iterator[None]:
        """Hold the review-decision lock of `model_name` (waiting up to `wait_seconds` for it)."""
        name, holder = f"review:{model_name}"[:250], uuid.uuid4().hex
        deadline = time.monotonic() + wait_seconds
        while not self._try_lock(name, holder, hold):
            if time.monotonic() > deadline:
                raise LedgerError(f"another review decision on {model_name} is in progress; try again")
            time.sleep(0.02 + random.random() * 0.05)  # noqa: S311 - jitter, not a secret
        try:
            yield
        finally:
            with self._transaction() as session:
                session.execute(delete(DecisionLockRow).where(DecisionLockRow.name == name,
                                                              DecisionLockRow.holder == holder))
