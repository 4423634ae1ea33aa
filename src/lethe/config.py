"""Configuration from `LETHE_*` environment variables; CLI flags override them.

Embedded default: everything under `./.lethe/` (SQLite ledger, MLflow in SQLite, local artifacts).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from lethe.errors import ConfigError

DEFAULT_MODEL_NAME = "lethe-classifier"
DEFAULT_IMAGE = "ghcr.io/lethe-unlearning/lethe:0.1.0"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: Path(_env("LETHE_HOME", ".lethe")))
    ledger_url: str | None = field(default_factory=lambda: _env("LETHE_LEDGER_URL"))
    tracking_uri: str | None = field(
        default_factory=lambda: _env("LETHE_TRACKING_URI", _env("MLFLOW_TRACKING_URI"))
    )
    artifact_root: str | None = field(default_factory=lambda: _env("LETHE_ARTIFACTS"))
    model_name: str = field(default_factory=lambda: _env("LETHE_MODEL_NAME", DEFAULT_MODEL_NAME))
    data_dir: str | None = field(default_factory=lambda: _env("LETHE_DATA_DIR"))
    subject_key: str | None = field(default_factory=lambda: _env("LETHE_SUBJECT_KEY"))
    demo: bool = field(default_factory=lambda: _env("LETHE_DEMO", "0") in ("1", "true", "yes"))
    image: str = field(default_factory=lambda: _env("LETHE_IMAGE", DEFAULT_IMAGE))

    @property
    def ledger(self) -> str:
        return self.ledger_url or f"sqlite:///{(self.home / 'ledger.db').resolve()}"

    @property
    def tracking(self) -> str:
        return self.tracking_uri or f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def artifacts(self) -> str:
        return self.artifact_root or str((self.home / "artifacts").resolve())

    def require_subject_key(self) -> bytes:
        """The HMAC key for subject ids; only the demo may fall back to a fixed, public one."""
        if self.subject_key:
            return self.subject_key.encode()
        if self.demo:
            return b"lethe-demo-key-not-secret"
        raise ConfigError("LETHE_SUBJECT_KEY is not set: subject ids are hashed with it (set LETHE_DEMO=1 "
                          "only for the demo)")


def settings() -> Settings:
    return Settings()
