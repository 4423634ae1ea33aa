"""The entry point of every pipeline task: `python3 -m components.task_entry -m kfp.dsl.executor_main ...`.

Each component's command runs this module instead of KFP's executor directly (`use_task_entry`, applied by
`components.step.step`). On a cluster it only runs the executor. When `LETHE_TASK_ENV_GRANTS` names a
grants file (`lethe.kfp.task_env`: `lethe pipeline run --local --cluster-env`, and the tests), it first
drops every lethe, S3 and MLflow variable that the task's compiled spec does not grant (the ConfigMap's
keys and the Secrets of its step's stores), so a run on one machine meets the credentials a pod would.
Standard library only before the executor starts: nothing here may read the variables it drops.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path
from typing import Any

from lethe.errors import PipelineError

#: The environment variable that names the grants file (lethe.kfp.task_env writes it).
GRANTS_VARIABLE = "LETHE_TASK_ENV_GRANTS"
EXECUTOR_MODULE = "kfp.dsl.executor_main"
_KFP_CALL = f"python3 -m {EXECUTOR_MODULE}"
_ENTRY_CALL = f"python3 -m {__name__} -m {EXECUTOR_MODULE}"


def use_task_entry(component: Any) -> Any:
    """Point a lightweight component's command at this module (the executor still runs, as its argument:
    kfp.local recognises a Python component by the executor module in its command)."""
    container = component.component_spec.implementation.container
    command = [part.replace(_KFP_CALL, _ENTRY_CALL) if _ENTRY_CALL not in part else part
               for part in container.command]
    if not any(_ENTRY_CALL in part for part in command):
        raise PipelineError(f"component {component.name}: its command does not run {EXECUTOR_MODULE} "
                            "(a new kfp?); components/task_entry.py must follow it")
    container.command = command
    return component


def _function_of(args: list[str]) -> str:
    try:
        return args[args.index("--function_to_execute") + 1]
    except (ValueError, IndexError):
        raise SystemExit("lethe: task entry: no --function_to_execute in the executor's arguments") from None


def confine(grants_path: str, function: str) -> list[str]:
    """Drop the governed variables the task `function` is not granted; returns the names dropped."""
    grants = json.loads(Path(grants_path).read_text())
    granted = grants["tasks"].get(function)
    if granted is None:
        raise SystemExit(f"lethe: task entry: {grants_path} grants nothing to task {function}")
    keep = set(granted) | set(grants["kept"])
    prefixes = tuple(grants["governed_prefixes"])
    dropped = sorted(name for name in os.environ if name.startswith(prefixes) and name not in keep)
    for name in dropped:
        del os.environ[name]
    return dropped


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] != "-m":
        raise SystemExit(f"usage: python -m {__name__} -m MODULE [ARGS...]")
    module, args = argv[1], argv[2:]
    grants_path = os.environ.get(GRANTS_VARIABLE)
    if grants_path:
        confine(grants_path, _function_of(args))
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
