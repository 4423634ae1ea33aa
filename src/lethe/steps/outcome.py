"""A run's outcome marker: what `register_and_gate` decided, read by the exit task.

KFP does not let an exit task consume outputs of the tasks it guards, so the register step writes
the outcome to the artifact store (`<artifacts>/runs/<run id>/outcome.json`, with its sha256) and
`finalize_requests` reads it back. No marker means the run produced no model version.

A run that fails may leave a failure note beside it (`failure.json`: the failing step and the first
line of its error), written by whoever watches the run's tasks (`lethe.kfp.local.run_local`);
the exit task puts it in the reason recorded on the run's requests.
"""

from __future__ import annotations

import json
from typing import Any

from lethe.config import settings
from lethe.errors import IntegrityError, PipelineError, StorageError
from lethe.storage import exists, get_bytes, join_uri, put_bytes


def outcome_uri(run_id: str, root: str | None = None) -> str:
    if not run_id or "/" in run_id or run_id in (".", ".."):
        raise PipelineError(f"invalid run id {run_id!r}")
    return join_uri(root or settings().artifacts, "runs", run_id, "outcome.json")


def write_outcome(run_id: str, outcome: dict[str, Any], root: str | None = None) -> str:
    uri = outcome_uri(run_id, root)
    put_bytes((json.dumps({"run_id": run_id, **outcome}, indent=2, sort_keys=True) + "\n").encode(), uri)
    return uri


def failure_uri(run_id: str, root: str | None = None) -> str:
    outcome_uri(run_id, root)  # the same check of the run id
    return join_uri(root or settings().artifacts, "runs", run_id, "failure.json")


def write_failure(run_id: str, step: str, error: str, root: str | None = None) -> str:
    """Record the run's first failing step and its first error line (a later failure does not replace it)."""
    uri = failure_uri(run_id, root)
    if not exists(uri):
        note = {"run_id": run_id, "step": step, "error": error}
        put_bytes((json.dumps(note, sort_keys=True) + "\n").encode(), uri)
    return uri


def read_failure(run_id: str, root: str | None = None) -> str | None:
    """`step <name> failed: <first error line>`; None when none was recorded or it is unreadable."""
    uri = failure_uri(run_id, root)
    try:
        if not exists(uri):
            return None
        raw = json.loads(get_bytes(uri))
    except (StorageError, ValueError):  # a note is a courtesy: an unreadable one is no note
        return None
    if not isinstance(raw, dict) or raw.get("run_id") != run_id or not raw.get("step"):
        return None
    error = str(raw.get("error") or "").strip()
    return f"step {raw['step']} failed" + (f": {error}" if error else "")


def read_outcome(run_id: str, root: str | None = None) -> dict[str, Any] | None:
    """The run's outcome, or None when it has none; a marker that fails its sha256 raises."""
    uri = outcome_uri(run_id, root)
    if not exists(uri):
        return None
    try:
        raw = json.loads(get_bytes(uri))
    except IntegrityError:
        raise
    except (StorageError, ValueError) as exc:
        raise PipelineError(f"cannot read the outcome of run {run_id} at {uri}: {exc}") from exc
    if raw.get("run_id") != run_id:
        raise PipelineError(f"the outcome at {uri} belongs to run {raw.get('run_id')}, not {run_id}")
    return raw
