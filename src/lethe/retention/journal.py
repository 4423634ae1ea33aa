"""What retention retired for a request, written before each copy is deleted (so a retirement killed half
way is still recorded, and the next `retention apply` finishes it): `<artifacts>/retention/<id>.json`."""

from __future__ import annotations

from typing import Any, ClassVar

from lethe.errors import LedgerError, LetheError
from lethe.storage import exists, join_uri
from lethe.storage.records import Record


class RetentionJournal(Record):
    FORMAT: ClassVar[str] = "lethe-retention/1"
    WHAT: ClassVar[str] = "a lethe retention journal"
    ERROR: ClassVar[type[LetheError]] = LedgerError

    request_id: str
    copies: list[dict[str, Any]] = []  # Copy.to_dict() with `retired_at`


def journal_uri(artifacts: str, request_id: str) -> str:
    return join_uri(artifacts, "retention", f"{request_id}.json")


def read_journal(artifacts: str, request_id: str) -> RetentionJournal:
    uri = journal_uri(artifacts, request_id)
    return RetentionJournal.get(uri) if exists(uri) else RetentionJournal(request_id=request_id)


def note_retired(artifacts: str, request_id: str, entry: dict[str, Any]) -> None:
    """Add a copy to the request's journal (once: a second note of the same copy changes nothing)."""
    journal = read_journal(artifacts, request_id)
    if any((c.get("kind"), c.get("name")) == (entry["kind"], entry["name"]) for c in journal.copies):
        return
    journal.model_copy(update={"copies": [*journal.copies, entry]}).put(journal_uri(artifacts, request_id))
