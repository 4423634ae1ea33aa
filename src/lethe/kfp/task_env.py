"""A local run with each task's environment cut down to what its compiled task gets on a cluster.

On a cluster a task sees the `lethe-config` keys and the Secrets its step's stores name
(components/platform.py); under kfp.local every task inherits this process's whole environment, so a
step that reads `s3://` without the S3 keys would pass here and fail in a pod. `grants_of` reads, from
the compiled pipeline, the environment variables each task is granted; `cluster_environment` writes
them where lethe's task entry (components/task_entry.py, the command of every component) finds them,
and the entry then drops every lethe, S3 and MLflow variable the task is not granted.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from lethe.config import environment
from lethe.errors import PipelineError

#: The variables a task may only have when its compiled spec grants them: lethe's settings and
#: credentials, S3's (boto3 reads AWS_*) and MLflow's.
GOVERNED_PREFIXES = ("LETHE_", "AWS_", "MLFLOW_")
#: Kept for every task: the harness's own (on a cluster LETHE_HOME is unset; locally it points the
#: embedded defaults somewhere a test can watch) and the grants file's name.
KEPT = ("LETHE_HOME", "LETHE_TASK_ENV_GRANTS")
GRANTS_VARIABLE = "LETHE_TASK_ENV_GRANTS"  # components.task_entry.GRANTS_VARIABLE


def _function_of(container: dict[str, Any]) -> str:
    args = container.get("args") or []
    try:
        return str(args[args.index("--function_to_execute") + 1])
    except (ValueError, IndexError):
        raise PipelineError("a compiled task without --function_to_execute: not a lightweight "
                            "Python component") from None


def grants_of(compiled_yaml: str | Path) -> dict[str, list[str]]:
    """Component function name -> the environment variables its compiled task is granted: the
    container's own env, the ConfigMap keys and the Secrets' keys (kfp-kubernetes). Two tasks of one
    component granted differently get what both are granted."""
    documents = list(yaml.safe_load_all(Path(compiled_yaml).read_text()))
    spec = documents[0]
    platform = documents[1] if len(documents) > 1 else {}
    k8s = ((platform.get("platforms") or {}).get("kubernetes") or {}).get("deploymentSpec", {})
    placed = k8s.get("executors") or {}
    grants: dict[str, set[str]] = {}
    for label, body in spec["deploymentSpec"]["executors"].items():
        container = body["container"]
        names = {entry["name"] for entry in container.get("env") or []}
        config = placed.get(label) or {}
        for source in (*(config.get("configMapAsEnv") or []), *(config.get("secretAsEnv") or [])):
            names |= {entry["envVar"] for entry in source.get("keyToEnv") or []}
        function = _function_of(container)
        grants[function] = grants[function] & names if function in grants else names
    return {function: sorted(names) for function, names in sorted(grants.items())}


def write_grants(name: str, directory: str | Path) -> Path:
    """Compile pipeline `name` as a cluster would run it and write its tasks' grants into `directory`."""
    from lethe.kfp.compiler import compile_pipeline

    directory = Path(directory)
    compiled = compile_pipeline(name, directory / f"{name}.yaml")
    path = directory / f"{name}.grants.json"
    path.write_text(json.dumps({"governed_prefixes": list(GOVERNED_PREFIXES), "kept": list(KEPT),
                                "tasks": grants_of(compiled)}, indent=2) + "\n")
    return path


@contextlib.contextmanager
def cluster_environment(name: str) -> Iterator[Path]:
    """While the block runs, the tasks of pipeline `name` started from this process see only what
    their compiled tasks are granted; yields the grants file."""
    with tempfile.TemporaryDirectory(prefix="lethe-grants-") as tmp:
        path = write_grants(name, tmp)
        with environment({GRANTS_VARIABLE: str(path)}):
            yield path
