"""A heartbeat for a working run: renews the run's leases in a background thread.

A run's claim on its requests expires after LETHE_LEASE_SECONDS unless renewed; while the process
that runs the pipeline lives, this thread renews it every `interval`. When that process dies
(SIGKILL, power loss), the beats stop, the lease runs out, and the next run reclaims the requests.
A beat that fails (the database is briefly unreachable) is logged and retried at the next beat:
the lease is three beats long, so one lost beat loses nothing.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from types import TracebackType

from lethe.config import settings
from lethe.errors import LetheError
from lethe.ledger.ledger import Ledger

log = logging.getLogger(__name__)


class LeaseHeartbeat:
    """`with LeaseHeartbeat(run_id): ...` keeps the run's leases alive for the block's duration."""

    def __init__(self, run_id: str, *, ledger_url: str | None = None, lease: timedelta | None = None,
                 interval: float | None = None) -> None:
        config = settings()
        self.run_id = run_id
        self.ledger_url = ledger_url
        self.lease = lease if lease is not None else timedelta(seconds=config.lease_seconds)
        self.interval = interval if interval is not None else self.lease.total_seconds() / 3
        if not 0 < self.interval < self.lease.total_seconds():
            raise LetheError(f"a heartbeat every {self.interval} s cannot keep a lease of "
                             f"{self.lease.total_seconds()} s alive")
        self.beats = 0  # renewals that reached the ledger (for tests and logs)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-heartbeat-{run_id}", daemon=True)

    def beat(self) -> int:
        """Renew once; returns how many requests the run still holds (0 before its claim)."""
        renewed = Ledger(self.ledger_url).renew(self.run_id, lease=self.lease)
        self.beats += 1
        return renewed

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except LetheError as exc:  # a lost beat is retried; three in a row lose the lease
                log.warning("lease heartbeat of run %s failed: %s", self.run_id, exc)

    def __enter__(self) -> LeaseHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=max(self.interval, 5.0))
