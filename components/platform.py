"""How pipeline tasks meet the cluster: credentials, settings, GPUs, CPU and memory, retries, caching.

Credentials reach the pods through Kubernetes Secrets (kfp-kubernetes `use_secret_as_env`), plain
settings through one ConfigMap; the compiled YAML names only the Secrets and their keys, never a
value. The names below are the contract with infra/ (kustomize). Everything here is applied to
tasks in pipelines/ at compile time; kfp.local ignores it (tasks inherit the local environment)
except the retry policies, which `pipelines.tooling.run_local` drops: on one machine a failed step
is not a lost node, and running it again would only fail again, later.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from kfp import kubernetes
from kfp.dsl import PipelineTask

from lethe.config import platform_settings
from lethe.errors import PipelineError

# Secret name -> {secret key: environment variable}. `optional`: the pod starts without it.
SECRETS: dict[str, dict[str, str]] = {
    # Object store (S3 API): artifacts, importances cache, MLflow artifacts read back by clients.
    "lethe-s3": {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"},
    # The ledger's database URL holds its password.
    "lethe-ledger": {"url": "LETHE_LEDGER_URL"},
    # HMAC key for subject identifiers (personal data is never stored raw).
    "lethe-subject-key": {"key": "LETHE_SUBJECT_KEY"},
    # MLflow basic auth, when the tracking server has it.
    "lethe-mlflow": {"username": "MLFLOW_TRACKING_USERNAME", "password": "MLFLOW_TRACKING_PASSWORD"},
}
OPTIONAL_SECRETS = frozenset({"lethe-mlflow"})

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

# What each kind of step needs: which secrets.
NEEDS: dict[str, tuple[str, ...]] = {
    "ledger": ("lethe-ledger", "lethe-subject-key", "lethe-s3", "lethe-mlflow"),
    "registry": ("lethe-s3", "lethe-mlflow"),
    "storage": ("lethe-s3",),
    "none": (),
}

# Placement, read when the pipelines are built, i.e. when `pipelines` is imported by
# `lethe pipeline compile|submit|schedule` (the scheduling Job gets them from the infra ConfigMap):
#   LETHE_GPU_STEPS="compute-importances,unlearn,..." the steps that get GPUs (lethe.config)
#   LETHE_GPU_LIMIT="1" (0: no GPU request)
#   LETHE_GPU_NODE_SELECTOR="cloud.google.com/gke-accelerator=nvidia-l4"
#   LETHE_GPU_TOLERATION="nvidia.com/gpu:NoSchedule" or "key=value:NoSchedule"
#   LETHE_CPU_REQUEST|LIMIT, LETHE_MEMORY_REQUEST|LIMIT, LETHE_STEP_RESOURCES, LETHE_RETRIES (lethe.config)
GPU_RESOURCE = "nvidia.com/gpu"
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# A retried task waits 30 s, then 60 s, ...: long enough for a node or the API server to come back.
RETRY_BACKOFF = "30s"
RETRY_BACKOFF_FACTOR = 2.0
RETRY_BACKOFF_MAX = "600s"


def step_name(task: PipelineTask) -> str:
    """The step a task runs: its component's name (`unlearn`, `compute-importances-shard`)."""
    return task.component_spec.name


def configure(task: PipelineTask, *, needs: str, cache: bool, gpu: bool | None = None,
              retry: bool | None = None, display_name: str | None = None) -> PipelineTask:
    """Give `task` its credentials, settings, caching flag, CPU and memory, GPUs and retry policy.

    `gpu`: None (the default) requests LETHE_GPU_LIMIT GPUs when the task's step is one of
    LETHE_GPU_STEPS; True or False decide for this task alone. `retry`: None retries a cacheable
    task (pure: the same inputs give the same outputs), True a step whose side effects are idempotent
    (keyed by the run or by content), False never; LETHE_RETRIES times (0: no task is retried)."""
    if needs not in NEEDS:
        raise PipelineError(f"unknown task needs {needs!r}; expected one of {sorted(NEEDS)}")
    placement = platform_settings()
    check_step_names(placement.gpu_steps, "LETHE_GPU_STEPS")
    check_step_names(placement.step_resources, "LETHE_STEP_RESOURCES")
    step = step_name(task)
    task.set_caching_options(cache)
    if display_name:
        task.set_display_name(display_name)
    kubernetes.use_config_map_as_env(task, config_map_name=CONFIG_MAP, config_map_key_to_env=CONFIG_KEYS,
                                     optional=True)
    for secret in NEEDS[needs]:
        kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env=SECRETS[secret],
                                     optional=secret in OPTIONAL_SECRETS)
    resources = placement.resources_for(step)
    task.set_cpu_request(resources["cpu_request"]).set_cpu_limit(resources["cpu_limit"])
    task.set_memory_request(resources["memory_request"]).set_memory_limit(resources["memory_limit"])
    if step in placement.gpu_steps if gpu is None else gpu:
        request_gpu(task)
    if (cache if retry is None else retry) and placement.retries > 0:
        task.set_retry(placement.retries, backoff_duration=RETRY_BACKOFF, backoff_factor=RETRY_BACKOFF_FACTOR,
                       backoff_max_duration=RETRY_BACKOFF_MAX)
    return task


def known_steps() -> frozenset[str]:
    """The component names of components.ALL, and the default GPU steps (some are added by pipelines
    that may not be installed yet)."""
    import components
    from lethe.config import DEFAULT_GPU_STEPS

    return frozenset(c.component_spec.name for c in components.ALL) | frozenset(DEFAULT_GPU_STEPS)


def check_step_names(names: Iterable[str], variable: str) -> None:
    """A misspelt step would silently run without its GPU or resources: refuse it."""
    unknown = sorted(set(names) - known_steps())
    if unknown:
        raise PipelineError(f"{variable} names unknown step(s) {', '.join(unknown)}; "
                            f"steps: {', '.join(sorted(known_steps()))}")


def gpu_limit() -> int:
    """LETHE_GPU_LIMIT (default 1); 0 requests none and the step runs on the CPU."""
    text = os.environ.get("LETHE_GPU_LIMIT", "").strip() or "1"
    if not text.isdigit():
        raise PipelineError(f"LETHE_GPU_LIMIT must be a whole number of GPUs, not {text!r}")
    return int(text)


def request_gpu(task: PipelineTask) -> PipelineTask:
    """NVIDIA GPUs for the task (the step itself falls back to the CPU when none is visible)."""
    limit = gpu_limit()
    if limit == 0:
        return task
    task.set_accelerator_type(GPU_RESOURCE).set_accelerator_limit(limit)
    selector = os.environ.get("LETHE_GPU_NODE_SELECTOR", "").strip()
    if selector:
        key, sep, value = selector.partition("=")
        if not sep or not key or not value:
            raise PipelineError(f"LETHE_GPU_NODE_SELECTOR must be key=value, not {selector!r}")
        kubernetes.add_node_selector(task, label_key=key.strip(), label_value=value.strip())
    toleration = os.environ.get("LETHE_GPU_TOLERATION", "").strip()
    if toleration:
        kubernetes.add_toleration(task, **parse_toleration(toleration))
    return task


def parse_toleration(text: str) -> dict[str, str]:
    """`key[=value]:Effect` -> add_toleration keyword arguments (Exists when no value)."""
    spec, sep, effect = text.rpartition(":")
    if not sep or effect not in _EFFECTS or not spec:
        raise PipelineError(f"LETHE_GPU_TOLERATION must be key[=value]:Effect with Effect one of {_EFFECTS}, "
                            f"not {text!r}")
    key, has_value, value = spec.partition("=")
    if has_value:
        return {"key": key, "operator": "Equal", "value": value, "effect": effect}
    return {"key": key, "operator": "Exists", "effect": effect}
