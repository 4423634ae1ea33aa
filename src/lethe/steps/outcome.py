"""A run's outcome marker: what `register_and_gate` decided, read by the exit task.

KFP does not let an exit task consume outputs of the tasks it guards, so the register step writes
the outcome to the artifact store (`<artifacts>/runs/<run id>/outcome.json`, with its sha256) and
`finalize_requests` reads it back. No marker means the run produced no model version.
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
