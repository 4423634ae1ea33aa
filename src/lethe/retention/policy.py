"""The retention policy: one YAML file (`retention.yaml` here holds the defaults;
`<LETHE_HOME>/retention.yaml` or `--policy PATH` replaces it), read by `load_policy`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lethe.config import settings
from lethe.errors import ConfigError

DEFAULT_POLICY = Path(__file__).with_name("retention.yaml")
POLICY_FILE = "retention.yaml"


class RetentionPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rollback_window_days: float = Field(30, ge=0, le=3650)
    controller: str = ""
    recipients: list[str] = []
    not_managed: list[str] = []
    #: PEM file of the Ed25519 key certificates are signed with (`lethe request keygen`); empty: unsigned.
    certificate_key: str = ""

    @property
    def window(self) -> timedelta:
        return timedelta(days=self.rollback_window_days)


def load_policy(path: str | Path | None = None) -> RetentionPolicy:
    """The policy at `path`, else `<LETHE_HOME>/retention.yaml` when it exists, else the defaults."""
    if path is None:
        home = settings().home / POLICY_FILE
        path = home if home.is_file() else DEFAULT_POLICY
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the retention policy {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"the retention policy {path} is not a mapping of settings")
    try:
        return RetentionPolicy(**raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "the file"
        raise ConfigError(f"the retention policy {path}: {where}: {error['msg']}") from None
