"""Configuration from `LETHE_*` environment variables; CLI flags override them.

Embedded default: everything under `./.lethe/` (SQLite ledger, MLflow in SQLite, local artifacts).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lethe.errors import ConfigError

DEFAULT_MODEL_NAME = "lethe-classifier"
DEFAULT_IMAGE = "ghcr.io/lethe-unlearning/lethe:0.1.0"
# A run's claim on its requests: renewed every third of it while the run works (a heartbeat), so a
# run that dies leaves its requests to the next run after at most this long.
DEFAULT_LEASE_SECONDS = 900.0
#: Public, and accepted only under LETHE_DEMO=1 with no LETHE_SUBJECT_KEY: not a secret.
DEMO_SUBJECT_KEY = b"lethe-demo-key-not-secret"


@contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """Environment variables set (None: removed) for the duration of a block and the processes it
    starts, then restored: unset again where they were unset. For settings that libraries read from
    the environment only (MLflow, lethe's own for a pipeline's tasks)."""
    saved = {name: os.environ.get(name) for name in values}

    def apply(settings: Mapping[str, str | None]) -> None:
        for name, value in settings.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    apply(values)
    try:
        yield
    finally:
        apply(saved)


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value:
        try:  # undecodable bytes arrive as lone surrogates, which fail later in URLs, SQL and JSON
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(f"{name} is not valid UTF-8 text") from None
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
    #: The data set the steps read when none is given (e.g. `s3://lethe/datasets/fashion-mnist`, as
    #: published by `lethe data publish`); it overrides the name on a model card, and the data's
    #: fingerprint must still match the card's.
    dataset_uri: str | None = field(default_factory=lambda: _env("LETHE_DATASET_URI"))
    #: The subject map (subject_id, sample_id; CSV or Parquet): a storage URI or a local file.
    subject_map: str | None = field(default_factory=lambda: _env("LETHE_SUBJECT_MAP"))
    #: Data only from object storage: a data directory, a Debian package, a bundled set, a download
    #: or a local subject map is an error (what a pod on a cluster must never fall back to).
    store_only: bool = field(default_factory=lambda: _env("LETHE_STORE_ONLY", "0").lower()
                             in ("1", "true", "yes"))
    subject_key: str | None = field(default_factory=lambda: _env("LETHE_SUBJECT_KEY"))
    demo: bool = field(default_factory=lambda: _env("LETHE_DEMO", "0") in ("1", "true", "yes"))
    image: str = field(default_factory=lambda: _env("LETHE_IMAGE", DEFAULT_IMAGE))
    lease_text: str | None = field(default_factory=lambda: _env("LETHE_LEASE_SECONDS"))

    @property
    def lease_seconds(self) -> float:
        """LETHE_LEASE_SECONDS: how long a run's claim lasts without a heartbeat (default 900)."""
        if self.lease_text is None:
            return DEFAULT_LEASE_SECONDS
        try:
            seconds = float(self.lease_text)
        except ValueError:
            seconds = float("nan")
        if not seconds > 0 or seconds == float("inf"):
            raise ConfigError(f"LETHE_LEASE_SECONDS must be a positive number of seconds, "
                              f"not {self.lease_text!r}")
        return seconds

    @property
    def heartbeat_seconds(self) -> float:
        """How often a working run renews its lease: a third of it, so one late beat loses nothing."""
        return self.lease_seconds / 3

    def home_dir(self) -> Path:
        """`home`, refused when it is a file or lies under one (the stores below it could not be made)."""
        for path in (self.home, *self.home.absolute().parents):
            if path.exists():
                if not path.is_dir():
                    where = "" if path == self.home else f" ({path} is a file)"
                    raise ConfigError(f"LETHE_HOME={self.home} is not a directory{where}")
                break
        return self.home

    @property
    def ledger(self) -> str:
        return self.ledger_url or f"sqlite:///{(self.home_dir() / 'ledger.db').resolve()}"

    @property
    def tracking(self) -> str:
        return self.tracking_uri or f"sqlite:///{(self.home_dir() / 'mlflow.db').resolve()}"

    @property
    def artifacts(self) -> str:
        return self.artifact_root or str((self.home_dir() / "artifacts").resolve())

    def require_subject_key(self) -> bytes:
        """The HMAC key for subject ids; only the demo may fall back to a fixed, public one.

        The key must carry MIN_SUBJECT_KEY_BYTES (hex, base64 or raw text); its UTF-8 bytes are the
        HMAC key, as always, so a key that passes hashes exactly as before."""
        from lethe.subject_id import MIN_SUBJECT_KEY_BYTES, key_bytes_carried

        if self.subject_key:
            carried = key_bytes_carried(self.subject_key)
            if carried < MIN_SUBJECT_KEY_BYTES:
                raise ConfigError(f"LETHE_SUBJECT_KEY carries {carried} byte(s); it needs at least "
                                  f"{MIN_SUBJECT_KEY_BYTES} (e.g. `openssl rand -hex 32`)")
            return self.subject_key.encode()
        if self.demo:
            return DEMO_SUBJECT_KEY
        raise ConfigError("LETHE_SUBJECT_KEY is not set: subject ids are hashed with it (set LETHE_DEMO=1 "
                          "only for the demo)")


def settings() -> Settings:
    return Settings()


# --- Pipeline tasks on a cluster: read when the pipelines are built (components/platform.py) ---------
#: The steps (KFP component names) that get LETHE_GPU_LIMIT GPUs: the passes over data.
DEFAULT_GPU_STEPS = ("compute-importances", "compute-importances-shard", "refresh-importances", "unlearn",
                     "evaluate", "train-reference-model", "retrain")
RESOURCE_KEYS = ("cpu_request", "cpu_limit", "memory_request", "memory_limit")
#: Every task's CPU and memory unless LETHE_STEP_RESOURCES names its step (Kubernetes quantities).
DEFAULT_TASK_RESOURCES = {"cpu_request": "500m", "cpu_limit": "2", "memory_request": "1Gi",
                          "memory_limit": "4Gi"}
#: LETHE_STEP_RESOURCES when unset: more for the steps that hold a model and pass over data.
DEFAULT_STEP_RESOURCES: dict[str, dict[str, str]] = {
    step: {"cpu_request": "2", "cpu_limit": "4", "memory_request": "4Gi", "memory_limit": "16Gi"}
    for step in DEFAULT_GPU_STEPS}
DEFAULT_RETRIES = 2
_CPU = re.compile(r"([0-9]*[.])?[0-9]+m?")  # the forms KFP's set_cpu_* accept
_MEMORY = re.compile(r"[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?")  # and set_memory_*
_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def _quantity(key: str, text: str, where: str) -> float:
    """A CPU or memory quantity as a number (cores, bytes), refused in a form KFP would refuse."""
    if key.startswith("cpu"):
        if not _CPU.fullmatch(text):
            raise ConfigError(f"{where}: {key} must be cores (\"2\", \"0.5\") or millicores (\"500m\"), "
                              f"not {text!r}")
        return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    match = _MEMORY.fullmatch(text)
    if not match:
        raise ConfigError(f"{where}: {key} must be a whole number with an optional unit "
                          f"(Ki Mi Gi Ti, K M G T), e.g. \"4Gi\", not {text!r}")
    return int(text[:len(text) - len(match.group(1) or "")]) * _UNITS[match.group(1) or ""]


def check_resources(resources: dict[str, str], where: str) -> dict[str, str]:
    """Known keys, valid quantities, and no request above its limit (Kubernetes would refuse the pod)."""
    unknown = sorted(set(resources) - set(RESOURCE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown resource key(s) {', '.join(unknown)}; "
                          f"expected {', '.join(RESOURCE_KEYS)}")
    values = {key: _quantity(key, str(text), where) for key, text in resources.items()}
    for kind in ("cpu", "memory"):
        request, limit = values.get(f"{kind}_request"), values.get(f"{kind}_limit")
        if request is not None and limit is not None and request > limit:
            raise ConfigError(f"{where}: {kind}_request {resources[f'{kind}_request']} is above "
                              f"{kind}_limit {resources[f'{kind}_limit']}")
    return {key: str(text) for key, text in resources.items()}


@dataclass(frozen=True)
class PlatformSettings:
    """Where and with what the pipeline tasks run on a cluster (kfp.local ignores all of it).

    LETHE_GPU_STEPS: step names (comma or space separated) that get LETHE_GPU_LIMIT GPUs;
    LETHE_CPU_REQUEST / LETHE_CPU_LIMIT / LETHE_MEMORY_REQUEST / LETHE_MEMORY_LIMIT: every task's;
    LETHE_STEP_RESOURCES: JSON {step: {cpu_request, cpu_limit, memory_request, memory_limit}},
    the whole table (default: DEFAULT_STEP_RESOURCES), each key it gives replacing the default;
    LETHE_RETRIES: how often a task that is safe to retry is retried (0: never)."""

    gpu_steps: tuple[str, ...]
    resources: dict[str, str]
    step_resources: dict[str, dict[str, str]]
    retries: int

    def resources_for(self, step: str) -> dict[str, str]:
        merged = {**self.resources, **self.step_resources.get(step, {})}
        return check_resources(merged, f"resources of step {step}")


def platform_settings() -> PlatformSettings:
    text = _env("LETHE_GPU_STEPS")
    gpu_steps = tuple(re.split(r"[,\s]+", text.strip())) if text is not None else DEFAULT_GPU_STEPS
    resources = {key: _env(f"LETHE_{key.upper()}", DEFAULT_TASK_RESOURCES[key]) or ""
                 for key in RESOURCE_KEYS}
    check_resources(resources, "LETHE_CPU_*/LETHE_MEMORY_*")
    table = _env("LETHE_STEP_RESOURCES")
    if table is None:
        step_resources = DEFAULT_STEP_RESOURCES
    else:
        try:
            step_resources = json.loads(table)
        except ValueError as exc:
            raise ConfigError(f"LETHE_STEP_RESOURCES is not JSON: {exc}") from None
        if not isinstance(step_resources, dict) or not all(isinstance(v, dict)
                                                           for v in step_resources.values()):
            raise ConfigError('LETHE_STEP_RESOURCES must map step names to {"cpu_request": ..., ...}')
        for step, entry in step_resources.items():
            check_resources(entry, f"LETHE_STEP_RESOURCES[{step}]")
    retries_text = _env("LETHE_RETRIES", str(DEFAULT_RETRIES)) or ""
    if not retries_text.isdigit():
        raise ConfigError(f"LETHE_RETRIES must be a whole number (0: no retries), not {retries_text!r}")
    return PlatformSettings(gpu_steps=tuple(s for s in gpu_steps if s), resources=resources,
                            step_resources={k: dict(v) for k, v in step_resources.items()},
                            retries=int(retries_text))
