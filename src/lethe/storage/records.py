"""Small JSON records tagged with their format (`{"format": "lethe-...", ...fields}`), read and written
the same way everywhere: a file that is missing, not JSON, or of another format is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lethe.errors import LetheError


def write_record(path: Path, fmt: str, fields: dict[str, Any]) -> Path:
    """`fields` under the format tag, as indented JSON (the folder is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": fmt, **fields}, indent=1) + "\n")
    return path


def read_record(path: Path, fmt: str, *, what: str, error: type[LetheError]) -> dict[str, Any]:
    """The fields of the record at `path` (the tag removed); `error` names `what` it should have been."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise error(f"cannot read {what} from {path}: {exc}") from exc
    if not isinstance(raw, dict) or raw.pop("format", None) != fmt:
        raise error(f"{path} is not {what} ({fmt})")
    return raw
