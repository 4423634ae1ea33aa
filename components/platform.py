"""How pipeline tasks meet the cluster: credentials, settings, GPUs, CPU and memory, retries, caching.

`configure(task)` applies the row of the task's step (components/step.py) and the deployment's
placement variables (lethe.config.PlatformSettings). Credentials reach the pods through Kubernetes
Secrets (kfp-kubernetes `use_secret_as_env`), plain settings through one ConfigMap; the compiled YAML
names only the Secrets and their keys, never a value. The names below are the contract with infra/
(kustomize). kfp.local ignores all of it (tasks inherit the local environment) except the retry
policies, which the local runner (lethe.kfp.local) builds its pipelines without.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Iterable, Iterator

from kfp import kubernetes
from kfp.dsl import PipelineTask

from components.step import Step, Store, row_of, step_rows
from lethe.config import PlatformSettings, platform_settings
from lethe.errors import PipelineError

# Secret name -> {secret key: environment variable}, in the order tasks mount them.
SECRETS: dict[str, dict[str, str]] = {
    # The ledger's database URL holds its password.
    "lethe-ledger": {"url": "LETHE_LEDGER_URL"},
    # HMAC key for subject identifiers (personal data is never stored raw).
    "lethe-subject-key": {"key": "LETHE_SUBJECT_KEY"},
    # Object store (S3 API): artifacts, importances cache, MLflow artifacts read back by clients.
    "lethe-s3": {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"},
    # MLflow basic auth, when the tracking server has it.
    "lethe-mlflow": {"username": "MLFLOW_TRACKING_USERNAME", "password": "MLFLOW_TRACKING_PASSWORD"},
}
OPTIONAL_SECRETS = frozenset({"lethe-mlflow"})  # the pod starts without it

# The secrets each store needs. MLflow clients read and write a version's artifacts in the object
# store themselves unless the server proxies them, so the registry needs the S3 keys too.
STORE_SECRETS: dict[Store, tuple[str, ...]] = {
    "ledger": ("lethe-ledger",),
    "subject_key": ("lethe-subject-key",),
    "registry": ("lethe-s3", "lethe-mlflow"),
    "storage": ("lethe-s3",),
}

# Plain settings, not secret: ConfigMap key -> environment variable (all optional).
CONFIG_MAP = "lethe-config"
CONFIG_KEYS: dict[str, str] = {
    "LETHE_TRACKING_URI": "LETHE_TRACKING_URI",
    "LETHE_ARTIFACTS": "LETHE_ARTIFACTS",
    "LETHE_MODEL_NAME": "LETHE_MODEL_NAME",
    "LETHE_DATA_DIR": "LETHE_DATA_DIR",
    "LETHE_DATASET_URI": "LETHE_DATASET_URI",
    "LETHE_SUBJECT_MAP": "LETHE_SUBJECT_MAP",
    "LETHE_STORE_ONLY": "LETHE_STORE_ONLY",
    "LETHE_LEASE_SECONDS": "LETHE_LEASE_SECONDS",
    "AWS_ENDPOINT_URL": "AWS_ENDPOINT_URL",
    "MLFLOW_S3_ENDPOINT_URL": "MLFLOW_S3_ENDPOINT_URL",
    "AWS_DEFAULT_REGION": "AWS_DEFAULT_REGION",
}

GPU_RESOURCE = "nvidia.com/gpu"
# A retried task waits 30 s, then 60 s, ...: long enough for a node or the API server to come back.
RETRY_BACKOFF = "30s"
RETRY_BACKOFF_FACTOR = 2.0
RETRY_BACKOFF_MAX = "600s"


def secrets_of(row: Step) -> tuple[str, ...]:
    """The Secrets a step mounts: those of the stores it touches, in SECRETS' order."""
    wanted = {secret for store in row.stores for secret in STORE_SECRETS[store]}
    return tuple(secret for secret in SECRETS if secret in wanted)


def configure(task: PipelineTask) -> PipelineTask:
    """Give `task` what its step's row and the deployment's placement say: display name, caching,
    settings, credentials (exactly those of its row's stores), CPU and memory, GPUs with the CUDA image
    (only when LETHE_CUDA_IMAGE is set), retries (LETHE_RETRIES times, for a row with `retry`)."""
    placement = platform_settings()
    check_step_names(placement.gpu_steps or (), "LETHE_GPU_STEPS")
    check_step_names(placement.step_resources or {}, "LETHE_STEP_RESOURCES")
    row = row_of(task.component_spec.name)
    task.set_caching_options(row.cache)
    task.set_display_name(row.display_name)
    kubernetes.use_config_map_as_env(task, config_map_name=CONFIG_MAP, config_map_key_to_env=CONFIG_KEYS,
                                     optional=True)
    for secret in secrets_of(row):
        kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env=SECRETS[secret],
                                     optional=secret in OPTIONAL_SECRETS)
    resources = placement.resources_for(row.name, row.resources)
    with _frames_without_source():
        _place(task, row, placement, resources)
    if row.retry and placement.retries > 0:
        task.set_retry(placement.retries, backoff_duration=RETRY_BACKOFF, backoff_factor=RETRY_BACKOFF_FACTOR,
                       backoff_max_duration=RETRY_BACKOFF_MAX)
    return task


def _place(task: PipelineTask, row: Step, placement: PlatformSettings, resources: dict[str, str]) -> None:
    task.set_cpu_request(resources["cpu_request"]).set_cpu_limit(resources["cpu_limit"])
    task.set_memory_request(resources["memory_request"]).set_memory_limit(resources["memory_limit"])
    if placement.wants_gpu(row.name, row.gpu):
        # A GPU only with an image that can use it (LETHE_CUDA_IMAGE; without it no task asks for one).
        task.set_container_image(placement.cuda_image)
        task.set_accelerator_type(GPU_RESOURCE).set_accelerator_limit(placement.gpu_limit)
        if placement.gpu_node_selector:
            key, value = placement.gpu_node_selector
            kubernetes.add_node_selector(task, label_key=key, label_value=value)
        if placement.gpu_toleration:
            kubernetes.add_toleration(task, **placement.gpu_toleration)


@contextlib.contextmanager
def _frames_without_source() -> Iterator[None]:
    """KFP's task setters (set_cpu_limit, ...) call `inspect.stack()` only to name themselves in an error
    message. `inspect.stack` looks up the module and source of every frame, scanning `sys.modules` for
    each frame without a file (`<frozen importlib._bootstrap>` while a pipeline module is imported):
    with torch and MLflow loaded, 0.1-1 s a call, over a minute for the pipelines. While they run, a
    walk of the frames that names each function stands in for it (no source lines, which KFP never reads)."""
    def stack(context: int = 1) -> list[inspect.FrameInfo]:
        frame, frames = sys._getframe(1), []
        while frame is not None:
            frames.append(inspect.FrameInfo(frame, frame.f_code.co_filename, frame.f_lineno,
                                            frame.f_code.co_name, None, None))
            frame = frame.f_back
        return frames

    full = inspect.stack
    inspect.stack = stack
    try:
        yield
    finally:
        inspect.stack = full


def check_step_names(names: Iterable[str], variable: str) -> None:
    """A misspelt step would silently run without its GPU or resources: refuse it."""
    known = step_rows()
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise PipelineError(f"{variable} names unknown step(s) {', '.join(unknown)}; "
                            f"steps: {', '.join(known)}")
