"""`lethe retention apply`: retire every copy the policy says is due, then mark complete each fulfilled
request none of whose copies remain.

Idempotent and resumable: each copy is noted in its requests' journals before it is deleted, and deleting
or retiring what is gone already changes nothing, so a run killed half way is finished by the next one and
every copy is retired once.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from lethe.audit.location import retire_references
from lethe.ledger import FULFILLED, ErasureRequest, Ledger
from lethe.registry.retire import retire_version
from lethe.retention.copies import (
    DUE,
    IMPORTANCES,
    PIPELINE_RUN,
    REFERENCES,
    RETIRED,
    VERSION,
    Copy,
    Holdings,
    copies_of,
)
from lethe.retention.journal import note_retired, read_journal
from lethe.retention.policy import RetentionPolicy
from lethe.storage import delete, exists, list_uris

#: The order copies are retired in: what the policy retires at once first.
ORDER = {REFERENCES: 0, IMPORTANCES: 1, PIPELINE_RUN: 2, VERSION: 3}


@dataclass
class RetentionReport:
    retired: list[dict[str, Any]] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    kept: int = 0  # copies whose rollback window is still open

    @property
    def summary(self) -> str:
        return (f"retention: {len(self.retired)} cop(ies) retired, {len(self.completed)} request(s) "
                f"complete, {self.kept} cop(ies) kept until their window ends")


def _delete_folder(uri: str) -> None:
    for item in list_uris(uri):
        if not item.endswith(".sha256") and exists(item):
            delete(item)


def _retire(copy: Copy, registry: Any, now: datetime) -> None:
    if copy.kind == VERSION:
        retire_version(registry, copy.name.removeprefix("version "), at=now)
    elif copy.kind == REFERENCES:
        retire_references("", uri=copy.name)
    elif copy.kind == IMPORTANCES:
        _delete_folder(copy.name)
    elif copy.kind == PIPELINE_RUN:
        shutil.rmtree(copy.name, ignore_errors=True)


def apply_retention(ledger: Ledger, registry: Any, *, artifacts: str, policy: RetentionPolicy, now: datetime,
                    pipeline_root: Path | None = None,
                    on_complete: Callable[[ErasureRequest], None] | None = None) -> RetentionReport:
    """Retire the due copies of every fulfilled request; complete those with none left. `on_complete`
    is called with each request that became complete (the caller writes its certificate again)."""
    report = RetentionReport()
    requests = ledger.list_requests(FULFILLED)
    if not requests:
        return report
    holdings = Holdings.read(registry, artifacts=artifacts, pipeline_root=pipeline_root)
    holders: dict[tuple[str, str], tuple[Copy, list[str]]] = {}
    for request in requests:
        for copy in copies_of(request, holdings, policy, now):
            if copy.state == DUE:
                holders.setdefault(copy.key, (copy, []))[1].append(request.id)
            elif copy.state != RETIRED:
                report.kept += 1
    at = now.isoformat(timespec="seconds")
    for copy, request_ids in sorted(holders.values(), key=lambda item: (ORDER[item[0].kind], item[0].name)):
        entry = {**copy.to_dict(), "state": RETIRED, "retired_at": at}
        for request_id in request_ids:  # noted first: a retirement killed after this is still recorded
            note_retired(artifacts, request_id, entry)
        _retire(copy, registry, now)
        report.retired.append(entry)
    after = Holdings.read(registry, artifacts=artifacts, pipeline_root=pipeline_root)
    for request in requests:
        left = [c for c in copies_of(request, after, policy, now) if c.state != RETIRED]
        if left:
            continue
        retired = {(c["kind"], c["name"]): c for c in read_journal(artifacts, request.id).copies}
        for copy in copies_of(request, after, policy, now):  # versions stay registered, tagged retired
            retired.setdefault(copy.key, copy.to_dict())
        done = ledger.complete(request.id, retired=list(retired.values()))
        report.completed.append(request.id)
        if on_complete is not None:
            on_complete(done)
    return report
