"""A run's outcome marker: what `register_and_gate` decided, read by the exit task.

KFP does not let an exit task consume outputs of the tasks it guards, so the register step writes
the outcome to the artifact store (`<artifacts>/runs/<run id>/outcome.json`, with its sha256) and
`finalize_requests` reads it back. No marker means the run produced no model version.

A run that fails may leave a failure note beside it (`failure.json`: the failing step and the first
line of its error), written by whoever watches the run's tasks (`lethe.kfp.local.run_local`); the exit task
puts it in the reason recorded on the run's requests.

Both are records (`lethe-run-outcome/1`, `lethe-run-failure/1`); markers written before they carried
a format tag read as version 0, which differs from version 1 only by the tag.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from lethe.config import settings
from lethe.errors import IntegrityError, LetheError, PipelineError, StorageError
from lethe.forgetting.decisions import Decision
from lethe.storage import exists, get_bytes, join_uri, put_bytes
from lethe.storage.records import FORMAT_KEY, Record, split_format


class _RunMarker(Record):
    """A record whose untagged files (written before records had a format) are its version 0."""

    UPGRADES: ClassVar[dict] = {0: lambda fields: fields}

    @classmethod
    def from_fields(cls, raw: Any, *, where: str = "the record") -> Any:
        if isinstance(raw, dict) and FORMAT_KEY not in raw:
            raw = {FORMAT_KEY: f"{split_format(cls.FORMAT)[0]}/0", **raw}
        return super().from_fields(raw, where=where)


class RunOutcome(_RunMarker):
    """What the register step decided for a run: the version, the gate's verdict, the requests it covers."""

    FORMAT: ClassVar[str] = "lethe-run-outcome/1"
    WHAT: ClassVar[str] = "a lethe run outcome"
    ERROR: ClassVar[type[LetheError]] = PipelineError
    JSON_INDENT: ClassVar[int] = 2  # the layout outcome markers always had
    SORT_KEYS: ClassVar[bool] = True

    run_id: str
    decision: Decision
    model_name: str = ""
    version: str = ""
    gate: dict[str, Any] = Field(default_factory=dict)  # the evaluation's gate: decision, reasons, ...
    request_ids: list[str] = Field(default_factory=list)
    scenario: str | None = None
    parent_version: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)  # the candidate's headline accuracies
    algorithm: str | None = None  # the importance method
    parameters: dict[str, Any] = Field(default_factory=dict)  # alpha, lam, alpha_method, batch_size
    #: The ladder's rungs that made the version (lethe.steps.ladder): method, cost, each one's verdict.
    ladder: list[dict[str, Any]] = Field(default_factory=list)

    def certified(self) -> dict[str, Any]:
        """What each request's ledger entry and certificate record of the run."""
        keys = ("model_name", "metrics", "gate", "algorithm", "parameters", "scenario", "ladder")
        return {key: getattr(self, key) for key in keys}


class RunFailure(_RunMarker):
    """The first step of a run that failed, and the first line of its error."""

    FORMAT: ClassVar[str] = "lethe-run-failure/1"
    WHAT: ClassVar[str] = "a lethe run failure note"
    ERROR: ClassVar[type[LetheError]] = PipelineError
    JSON_INDENT: ClassVar[int | None] = None  # one line, as failure notes always were
    SORT_KEYS: ClassVar[bool] = True

    run_id: str
    step: str
    error: str | None = ""


def outcome_uri(run_id: str, root: str | None = None) -> str:
    if not run_id or "/" in run_id or run_id in (".", ".."):
        raise PipelineError(f"invalid run id {run_id!r}")
    return join_uri(root or settings().artifacts, "runs", run_id, "outcome.json")


def write_outcome(run_id: str, outcome: RunOutcome | Mapping[str, Any], root: str | None = None) -> str:
    """Store the run's outcome (a record, or its fields but `run_id`) with its sidecar; returns the URI."""
    record = outcome if isinstance(outcome, RunOutcome) else RunOutcome(run_id=run_id, **outcome)
    if record.run_id != run_id:
        raise PipelineError(f"the outcome of run {record.run_id} cannot be stored as run {run_id}'s")
    uri = outcome_uri(run_id, root)
    put_bytes(record.to_bytes(), uri)
    return uri


def failure_uri(run_id: str, root: str | None = None) -> str:
    outcome_uri(run_id, root)  # the same check of the run id
    return join_uri(root or settings().artifacts, "runs", run_id, "failure.json")


def write_failure(run_id: str, step: str, error: str, root: str | None = None) -> str:
    """Record the run's first failing step and its first error line (a later failure does not replace it)."""
    uri = failure_uri(run_id, root)
    if not exists(uri):
        put_bytes(RunFailure(run_id=run_id, step=step, error=error).to_bytes(), uri)
    return uri


def read_failure(run_id: str, root: str | None = None) -> str | None:
    """`step <name> failed: <first error line>`; None when none was recorded or it is unreadable."""
    uri = failure_uri(run_id, root)
    try:
        if not exists(uri):
            return None
        note = RunFailure.from_bytes(get_bytes(uri), where=uri)
    except (StorageError, PipelineError):  # a note is a courtesy: an unreadable one is no note
        return None
    if note.run_id != run_id or not note.step:
        return None
    error = (note.error or "").strip()
    return f"step {note.step} failed" + (f": {error}" if error else "")


def read_outcome(run_id: str, root: str | None = None) -> RunOutcome | None:
    """The run's outcome, or None when it has none; a marker that fails its sha256 raises."""
    uri = outcome_uri(run_id, root)
    if not exists(uri):
        return None
    try:
        outcome = RunOutcome.from_bytes(get_bytes(uri), where=uri)
    except IntegrityError:
        raise
    except StorageError as exc:
        raise PipelineError(f"cannot read the outcome of run {run_id} at {uri}: {exc}") from exc
    if outcome.run_id != run_id:
        raise PipelineError(f"the outcome at {uri} belongs to run {outcome.run_id}, not {run_id}")
    return outcome
