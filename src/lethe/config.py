"""Configuration from `LETHE_*` environment variables; CLI flags override them.

Embedded default: everything under `./.lethe/` (SQLite ledger, MLflow in SQLite, local artifacts).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
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


LOCAL_TASK_MODES = ("warm", "subprocess")


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
    local_tasks_text: str | None = field(default_factory=lambda: _env("LETHE_LOCAL_TASKS"))

    @property
    def local_tasks(self) -> str:
        """LETHE_LOCAL_TASKS: how `lethe pipeline run --local` starts its tasks, "warm" (default: forked
        from an interpreter that imported their libraries once, lethe.kfp.warm_tasks) or "subprocess"."""
        value = (self.local_tasks_text or "").strip() or "warm"
        if value not in LOCAL_TASK_MODES:
            raise ConfigError(f"LETHE_LOCAL_TASKS must be one of {', '.join(LOCAL_TASK_MODES)}, "
                              f"not {value!r}")
        return value

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


def require_existing_store(url: str, what: str, variable: str) -> str:
    """`url` when it names a store that is there: a command that only reads (`review list`, `request
    list`) must not create an empty SQLite file where it was run from and report that nothing is in it.
    Servers (PostgreSQL, an MLflow server) are left to their clients, which say when they cannot connect."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            home = _env("LETHE_HOME", ".lethe")
            raise ConfigError(f"no {what} at {path} (LETHE_HOME={home}, from {Path.cwd()}): run where it is, "
                              f"or set LETHE_HOME or {variable}")
    return url


# --- Pipeline tasks on a cluster: read when the pipelines are built (components/platform.py) ---------
# Which steps get GPUs and more CPU and memory by default is each step's row (components/step.py);
# the variables below override the rows for a deployment.
RESOURCE_KEYS = ("cpu_request", "cpu_limit", "memory_request", "memory_limit")
#: Every task's CPU and memory unless its step's row or LETHE_STEP_RESOURCES says more.
DEFAULT_TASK_RESOURCES = {"cpu_request": "500m", "cpu_limit": "2", "memory_request": "1Gi",
                          "memory_limit": "4Gi"}
DEFAULT_RETRIES = 2
DEFAULT_GPU_LIMIT = 1
#: The units KFP's set_cpu_* and set_memory_* accept: a subset of Kubernetes' quantities.
CPU_UNITS = ("", "m")
MEMORY_UNITS = ("", "K", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def quantity(key: str, text: str, where: str) -> Decimal:
    """A CPU or memory quantity as a number (cores, bytes), by Kubernetes' own parser; refused in a
    form KFP would refuse (memory in whole numbers, CPU in cores or millicores)."""
    from kubernetes.utils import parse_quantity  # ships with kfp; only the pipeline build calls this

    cpu = key.startswith("cpu")
    unit = text.lstrip("0123456789.")
    number = text[:len(text) - len(unit)]
    well_formed = (text.isascii() and number[-1:].isdigit() and unit in (CPU_UNITS if cpu else MEMORY_UNITS)
                   and number.count(".") <= (1 if cpu else 0))
    if well_formed:
        try:
            return Decimal(parse_quantity(text))
        except (ValueError, ArithmeticError):
            pass
    if cpu:
        raise ConfigError(f"{where}: {key} must be cores (\"2\", \"0.5\") or millicores (\"500m\"), "
                          f"not {text!r}")
    raise ConfigError(f"{where}: {key} must be a whole number with an optional unit "
                      f"(Ki Mi Gi Ti, K M G T), e.g. \"4Gi\", not {text!r}")


def check_resources(resources: Mapping[str, str], where: str) -> dict[str, str]:
    """Known keys, valid quantities, and no request above its limit (Kubernetes would refuse the pod)."""
    unknown = sorted(set(resources) - set(RESOURCE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown resource key(s) {', '.join(unknown)}; "
                          f"expected {', '.join(RESOURCE_KEYS)}")
    values = {key: quantity(key, str(text), where) for key, text in resources.items()}
    for kind in ("cpu", "memory"):
        request, limit = values.get(f"{kind}_request"), values.get(f"{kind}_limit")
        if request is not None and limit is not None and request > limit:
            raise ConfigError(f"{where}: {kind}_request {resources[f'{kind}_request']} is above "
                              f"{kind}_limit {resources[f'{kind}_limit']}")
    return {key: str(text) for key, text in resources.items()}


def parse_toleration(text: str) -> dict[str, str]:
    """`key[=value]:Effect` -> kfp-kubernetes add_toleration keyword arguments (Exists when no value)."""
    spec, sep, effect = text.rpartition(":")
    if not sep or effect not in TOLERATION_EFFECTS or not spec:
        raise ConfigError(f"LETHE_GPU_TOLERATION must be key[=value]:Effect with Effect one of "
                          f"{TOLERATION_EFFECTS}, not {text!r}")
    key, has_value, value = spec.partition("=")
    if has_value:
        return {"key": key, "operator": "Equal", "value": value, "effect": effect}
    return {"key": key, "operator": "Exists", "effect": effect}


def parse_node_selector(text: str) -> tuple[str, str]:
    """`key=value` -> (label key, label value) for kfp-kubernetes add_node_selector."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise ConfigError(f"LETHE_GPU_NODE_SELECTOR must be key=value, not {text!r}")
    return key.strip(), value.strip()


@dataclass(frozen=True)
class PlatformSettings:
    """Where and with what the pipeline tasks run on a cluster (kfp.local ignores all of it).

    LETHE_CUDA_IMAGE: the image of the tasks that get GPUs (lethe's CUDA image); without it no task
    requests a GPU (the CPU image cannot use one) and every task runs on LETHE_IMAGE;
    LETHE_GPU_STEPS: step names (comma or space separated) that get GPUs, instead of the steps whose
    rows say `gpu`; LETHE_GPU_LIMIT: GPUs per such task (default 1; 0: none, they run on the CPU);
    LETHE_GPU_NODE_SELECTOR `key=value` and LETHE_GPU_TOLERATION `key[=value]:Effect` for them;
    LETHE_CPU_REQUEST / LETHE_CPU_LIMIT / LETHE_MEMORY_REQUEST / LETHE_MEMORY_LIMIT: every task's;
    LETHE_STEP_RESOURCES: JSON {step: {cpu_request, cpu_limit, memory_request, memory_limit}},
    the whole table instead of the rows' resources, each key it gives replacing the default;
    LETHE_RETRIES: how often a task that is safe to retry is retried (0: never)."""

    gpu_steps: tuple[str, ...] | None  # None: the steps' rows decide
    gpu_limit: int
    cuda_image: str | None  # None: no GPU anywhere
    gpu_node_selector: tuple[str, str] | None
    gpu_toleration: dict[str, str] | None
    resources: dict[str, str]
    step_resources: dict[str, dict[str, str]] | None  # None: the steps' rows decide
    retries: int

    def resources_for(self, step: str, row_resources: Mapping[str, str] | None = None) -> dict[str, str]:
        """The step's CPU and memory: every task's, then its row's (or LETHE_STEP_RESOURCES' entry)."""
        table = self.step_resources.get(step, {}) if self.step_resources is not None else row_resources or {}
        return check_resources({**self.resources, **table}, f"resources of step {step}")

    def wants_gpu(self, step: str, row_gpu: bool) -> bool:
        chosen = step in self.gpu_steps if self.gpu_steps is not None else row_gpu
        return chosen and self.gpu_limit > 0 and self.cuda_image is not None


def _whole_number(name: str, default: int, hint: str) -> int:
    text = (_env(name) or "").strip() or str(default)
    if not (text.isascii() and text.isdigit()):
        raise ConfigError(f"{name} must be a whole number{hint}, not {text!r}")
    return int(text)


def _step_resources() -> dict[str, dict[str, str]] | None:
    table = _env("LETHE_STEP_RESOURCES")
    if table is None:
        return None
    try:
        step_resources = json.loads(table)
    except ValueError as exc:
        raise ConfigError(f"LETHE_STEP_RESOURCES is not JSON: {exc}") from None
    if not isinstance(step_resources, dict) or not all(isinstance(v, dict) for v in step_resources.values()):
        raise ConfigError('LETHE_STEP_RESOURCES must map step names to {"cpu_request": ..., ...}')
    return {step: check_resources(entry, f"LETHE_STEP_RESOURCES[{step}]")
            for step, entry in step_resources.items()}


def platform_settings() -> PlatformSettings:
    text = _env("LETHE_GPU_STEPS")
    gpu_steps = tuple(s for s in text.replace(",", " ").split() if s) if text is not None else None
    resources = {key: _env(f"LETHE_{key.upper()}", DEFAULT_TASK_RESOURCES[key]) or ""
                 for key in RESOURCE_KEYS}
    selector = (_env("LETHE_GPU_NODE_SELECTOR") or "").strip()
    toleration = (_env("LETHE_GPU_TOLERATION") or "").strip()
    return PlatformSettings(
        gpu_steps=gpu_steps,
        gpu_limit=_whole_number("LETHE_GPU_LIMIT", DEFAULT_GPU_LIMIT, " of GPUs"),
        cuda_image=(_env("LETHE_CUDA_IMAGE") or "").strip() or None,
        gpu_node_selector=parse_node_selector(selector) if selector else None,
        gpu_toleration=parse_toleration(toleration) if toleration else None,
        resources=check_resources(resources, "LETHE_CPU_*/LETHE_MEMORY_*"),
        step_resources=_step_resources(),
        retries=_whole_number("LETHE_RETRIES", DEFAULT_RETRIES, " (0: no retries)"))


# --- The S3 client's limits (lethe.storage.s3) ---------------------------------------------------------
@dataclass(frozen=True)
class S3Settings:
    """LETHE_S3_CONNECT_TIMEOUT (seconds, default 5), LETHE_S3_MAX_ATTEMPTS (default 2) and
    LETHE_S3_MULTIPART_MB (multipart threshold and part size, default 16): an unreachable store
    fails in seconds, not minutes."""

    connect_timeout: int
    max_attempts: int
    multipart_mb: int


def s3_settings() -> S3Settings:
    def integer(name: str, default: int) -> int:
        text = _env(name, str(default)) or ""
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, not {text!r}") from None

    return S3Settings(connect_timeout=integer("LETHE_S3_CONNECT_TIMEOUT", 5),
                      max_attempts=integer("LETHE_S3_MAX_ATTEMPTS", 2),
                      multipart_mb=integer("LETHE_S3_MULTIPART_MB", 16))
