"""One pipeline run on this machine with kfp.local (a process per task in this environment, no venv,
forked from a warm interpreter: `lethe.kfp.warm_tasks`).

A local run of a pipeline that claims erasure requests is watched from this process: it renews the
run's lease while the run works (`lethe.ledger.LeaseHeartbeat`; when this process dies the beats stop
and the next run reclaims the requests), and when a task fails it records the task and the first
line of its error (`lethe.steps.outcome.write_failure`) before the exit task settles the requests,
so their reason says what failed rather than KFP's "Task exit-handler-1 failed.". Subject and sample
ids given as parameters are blanked in the task logs.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lethe.kfp.catalog import build, check_params
from lethe.kfp.local_hooks import TaskOutput, logging_kept, pipeline_job_id, print_kept, task_events
from lethe.kfp.warm_tasks import mode as warm_tasks_mode
from lethe.kfp.warm_tasks import start_server, warm_tasks

CLAIMS_REQUESTS = frozenset({"scheduled"})  # pipelines whose runs hold leases on erasure requests
#: Pipeline parameters that hold subject or sample ids: their values never reach a log.
ID_PARAMS = frozenset({"forget_ids", "forget_subjects"})


@dataclass
class LocalRun:
    name: str
    succeeded: bool
    seconds: float
    pipeline_root: Path
    tasks: dict[str, str]  # task name -> SUCCESS | FAILURE, in order of completion
    error: str | None = None
    run_id: str = ""  # the KFP job id of the run (PIPELINE_JOB_ID_PLACEHOLDER): the ledger's run id
    failed_task: str | None = None  # the first task that failed
    failure: str = ""  # the first line of its error ("" when it left no traceback)


def local_pipeline(name: str) -> Any:
    """Pipeline `name` built for this machine: the same graph without retry policies (built under
    LETHE_RETRIES=0). Retries are for a cluster's transient failures (a lost node, an API server
    restarting): on one machine a failed step would only fail again, after the back-off."""
    return build(name, {"LETHE_RETRIES": "0"})


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        try:  # `-p forget_subjects='["a"]'` arrives as text when it is not parsed as JSON
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        yield value
        if isinstance(parsed, list):
            yield from _strings(parsed)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def id_redactor(params: Mapping[str, Any]) -> Callable[[str], str]:
    """Blanks the values of the id parameters (raw or JSON-escaped) wherever they appear: kfp.local
    dumps every task's executor input, parameters and all, into the log."""
    from lethe.redact import Redactor

    return Redactor(v for key in ID_PARAMS & set(params) for v in _strings(params[key]))


def _record_failure(run_id: str, task: str, error: str) -> None:
    from lethe.errors import LetheError
    from lethe.steps.outcome import write_failure

    try:
        write_failure(run_id, task, error)
    except LetheError as exc:  # the note is a courtesy; the run's failure is reported anyway
        print(f"lethe: cannot record the failure of run {run_id}: {exc}", file=sys.stderr)


def run_local(name: str, params: Mapping[str, Any] | None = None, *, pipeline_root: str | Path,
              log_path: str | Path | None = None,
              on_task: Callable[[str, str], None] | None = None, cluster_env: bool = False) -> LocalRun:
    """Run a pipeline on this machine with kfp.local; `on_task(task, state)` as tasks start (RUNNING)
    and end (SUCCESS, FAILURE).

    Every task runs KFP's executor (through lethe's task entry) with this interpreter and inherits the
    environment (LETHE_HOME, LETHE_* settings); with `cluster_env`, only what its compiled task is
    granted on a cluster (`lethe.kfp.task_env`). The parameters are checked by the pipeline's schema
    before anything runs. A failed task does not raise: the result says so.
    `log_path`: where the tasks' output goes (default: this process's stdout).
    """
    from kfp import local

    params = check_params(name, params)
    task_start = warm_tasks_mode()  # LETHE_LOCAL_TASKS, checked before anything runs
    if task_start == "warm":
        start_server()  # its imports overlap the pipeline's build
    component = local_pipeline(name)
    root = Path(pipeline_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=False)
    run_id = f"local-{uuid.uuid4().hex[:16]}"
    claims = name in CLAIMS_REQUESTS
    redact = id_redactor(params)
    tasks: dict[str, str] = {}
    failures: list[tuple[str, str]] = []  # (task, its error line), the first failure first
    started = time.perf_counter()
    error = None
    with contextlib.ExitStack() as stack:
        if cluster_env:
            from lethe.kfp.task_env import cluster_environment

            stack.enter_context(cluster_environment(name))
        stack.enter_context(warm_tasks(task_start))
        stack.enter_context(print_kept())
        stack.enter_context(logging_kept())
        stack.enter_context(pipeline_job_id(run_id))
        if claims:
            from lethe.ledger import LeaseHeartbeat

            stack.enter_context(LeaseHeartbeat(run_id))
        if log_path is not None:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            sink = stack.enter_context(open(log_path, "a"))
        else:
            sink = sys.stdout
        output = TaskOutput(sink, redact)
        stack.callback(output.finish)  # runs before the log file closes (entered after it)

        def on_event(task: str, state: str) -> None:
            if state == "RUNNING":
                output.task_started()
            else:
                tasks[task] = state
                if state == "FAILURE" and not failures:
                    failures.append((task, output.error_line()))
                    if claims:
                        _record_failure(run_id, *failures[0])
            if on_task:
                on_task(task, state)

        stack.enter_context(contextlib.redirect_stdout(output))
        stack.enter_context(task_events(on_event))
        stack.enter_context(warnings.catch_warnings())
        # The lethe image's name has no "python" in it, and display names and resources mean
        # nothing locally: kfp.local warns about both on every task.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
        try:
            component(**params)
        except Exception as exc:  # kfp.local raises for invalid graphs or inputs even without raise_on_error
            error = redact(f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - started
    failed = error is not None or any(state != "SUCCESS" for state in tasks.values())
    failed_task, failure = failures[0] if failures else (None, "")
    if failed and error is None:
        error = "task(s) failed: " + ", ".join(t for t, s in tasks.items() if s != "SUCCESS")
        if failure:
            error += f" ({failed_task}: {failure})"
    return LocalRun(name=name, succeeded=not failed, seconds=seconds, pipeline_root=root, tasks=tasks,
                    error=error, run_id=run_id, failed_task=failed_task, failure=failure)
