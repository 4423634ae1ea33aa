"""File names inside the artifacts steps hand each other (kept import-light: no torch here)."""

from __future__ import annotations

from pathlib import Path

IMPORTANCES_FILE = "importances.safetensors"
IMPORTANCES_INFO_FILE = "importances.json"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
DAMPENING_FILE = "dampening.json"


def importances_file(path: str | Path) -> Path:
    """The safetensors file of an importances output (its directory, or the file itself)."""
    path = Path(path)
    return path / IMPORTANCES_FILE if path.is_dir() else path
