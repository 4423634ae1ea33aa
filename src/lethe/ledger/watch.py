"""Deadlines watched (`lethe request check`): requests overdue, stuck in progress beyond their lease, or
waiting for a reviewer within N days of their deadline; a JSON summary and a Prometheus metrics file."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from lethe.ledger.schema import IN_PROGRESS, NEEDS_REVIEW, STATES
from lethe.ledger.store import ErasureRequest

METRIC = "lethe_erasure_requests"


@dataclass
class DeadlineCheck:
    checked_at: datetime
    review_days: float
    by_state: dict[str, int] = field(default_factory=dict)
    overdue: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)  # in progress, lease ran out
    review_due: list[str] = field(default_factory=list)  # needs review, deadline within review_days

    @property
    def healthy(self) -> bool:
        return not (self.overdue or self.stuck or self.review_due)

    @property
    def line(self) -> str:
        if self.healthy:
            return f"ok: {sum(self.by_state.values())} request(s), none overdue, stuck or near its deadline"
        return (f"ALERT: {len(self.overdue)} overdue, {len(self.stuck)} stuck in progress beyond the lease, "
                f"{len(self.review_due)} awaiting review within {self.review_days:g} day(s) of the deadline")

    def to_dict(self) -> dict[str, Any]:
        return {"checked_at": self.checked_at.isoformat(), "healthy": self.healthy,
                "review_days": self.review_days, "by_state": self.by_state, "overdue": self.overdue,
                "stuck": self.stuck, "review_due": self.review_due}

    def metrics(self) -> str:
        """Prometheus text format (node_exporter's textfile collector reads it)."""
        lines = [f"# HELP {METRIC} Erasure requests by state.", f"# TYPE {METRIC} gauge"]
        lines += [f'{METRIC}{{state="{state}"}} {self.by_state.get(state, 0)}' for state in STATES]
        for name, ids, text in (("overdue", self.overdue, "open past their deadline"),
                                ("stuck", self.stuck, "in progress beyond their lease"),
                                ("review_due", self.review_due, "awaiting review near their deadline")):
            lines += [f"# HELP {METRIC}_{name} Erasure requests {text}.", f"# TYPE {METRIC}_{name} gauge",
                      f"{METRIC}_{name} {len(ids)}"]
        lines += ["# HELP lethe_erasure_check_timestamp_seconds When the ledger was checked.",
                  "# TYPE lethe_erasure_check_timestamp_seconds gauge",
                  f"lethe_erasure_check_timestamp_seconds {self.checked_at.timestamp():.0f}"]
        return "\n".join(lines) + "\n"


def check_deadlines(requests: list[ErasureRequest], *, now: datetime, review_days: float) -> DeadlineCheck:
    check = DeadlineCheck(checked_at=now, review_days=review_days)
    for request in requests:
        check.by_state[request.state] = check.by_state.get(request.state, 0) + 1
        if request.is_open and now > request.deadline:
            check.overdue.append(request.id)
        if request.state == IN_PROGRESS and request.lease_expires_at is not None \
                and now > request.lease_expires_at:
            check.stuck.append(request.id)
        if request.state == NEEDS_REVIEW and request.deadline - now <= timedelta(days=review_days):
            check.review_due.append(request.id)
    return check
