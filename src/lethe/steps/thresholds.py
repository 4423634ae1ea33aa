"""The gate's thresholds from wherever a step is given them: one set of limits for the search and the gate.

A pipeline runs in pods that cannot read a file on the machine that submitted it, so a pipeline's
`thresholds` parameter is inline YAML/JSON or a storage URI; the CLI also takes a local file.
"""

from __future__ import annotations

import re
from pathlib import Path

from lethe.errors import ConfigError, StorageError
from lethe.evaluation.gate import Thresholds, load_thresholds, parse_thresholds

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def resolve_thresholds(source: str | Path | Thresholds | None) -> Thresholds:
    """Defaults (None or ""), a `Thresholds`, inline YAML/JSON (a mapping, e.g. `{class: {forget_accuracy_max:
    0.03}}`), a storage URI (`s3://…`, read through lethe.storage and checked against its `.sha256` sidecar,
    as `sha256sum FILE > FILE.sha256` writes it), or a local YAML file."""
    if isinstance(source, Thresholds):
        return source
    if source is None or not str(source).strip():
        return load_thresholds(None)
    text = str(source).strip()
    if text.startswith("file://"):
        return load_thresholds(text.removeprefix("file://"))
    if _URI.match(text):
        from lethe.storage import get_bytes

        try:
            content = get_bytes(text)
        except StorageError as exc:
            raise ConfigError(f"cannot read gate thresholds from {text}: {exc}") from exc
        return parse_thresholds(content.decode("utf-8", errors="replace"), source=text)
    if text.startswith(("{", "[")) or "\n" in text or (":" in text and not Path(text).exists()):
        return parse_thresholds(text)
    return load_thresholds(text)
