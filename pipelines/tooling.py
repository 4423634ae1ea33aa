"""Compile, run locally (kfp.local), submit and schedule the pipelines. Used by `lethe pipeline`."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lethe.errors import PipelineError
from pipelines import PIPELINES

CRON_FIELDS = ("second", "minute", "hour", "day of month", "month", "day of week")


def pipeline(name: str) -> Callable[..., Any]:
    try:
        return PIPELINES[name]
    except KeyError:
        raise PipelineError(f"unknown pipeline {name!r}; expected one of {', '.join(PIPELINES)}") from None


def compile_pipeline(name: str, out_path: str | Path) -> Path:
    from kfp import compiler

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline(name), str(out))
    return out


def compile_all(out_dir: str | Path) -> dict[str, Path]:
    """Write `<out_dir>/<name>.yaml` for every pipeline."""
    return {name: compile_pipeline(name, Path(out_dir) / f"{name}.yaml") for name in PIPELINES}


def validate_cron(expression: str) -> str:
    """KFP cron expressions have six fields, seconds first ("0 0 2 * * *" is 02:00 every day)."""
    fields = expression.split()
    if len(fields) != len(CRON_FIELDS):
        raise PipelineError(
            f"cron expression {expression!r} has {len(fields)} field(s); KFP needs six: "
            f"{' '.join(CRON_FIELDS)} (e.g. \"0 0 2 * * *\" for 02:00 every day)")
    allowed = set("0123456789*/,-?LW#") | set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    for label, field in zip(CRON_FIELDS, fields, strict=True):
        if not set(field.upper()) <= allowed:
            raise PipelineError(f"cron field {label} {field!r} is not a cron field")
    return " ".join(fields)


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """`key=value` pairs; a value that reads as JSON (number, list, bool) is taken as such."""
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise PipelineError(f"pipeline parameter {item!r} is not key=value")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        params[key.strip()] = value
    return params


def check_params(name: str, params: Mapping[str, Any]) -> None:
    import inspect

    known = inspect.signature(pipeline(name).pipeline_func).parameters
    unknown = [key for key in params if key not in known]
    if unknown:
        raise PipelineError(f"pipeline {name} has no parameter(s) {', '.join(unknown)}; "
                            f"it takes {', '.join(known)}")


@dataclass
class LocalRun:
    name: str
    succeeded: bool
    seconds: float
    pipeline_root: Path
    tasks: dict[str, str]  # task name -> SUCCESS | FAILURE | skipped ..., in order of completion
    error: str | None = None


class _TaskStream(io.TextIOBase):
    """Stands in for stdout during a kfp.local run: kfp.local prints its own status lines and every
    task's streamed output there. Writes it all to `sink` and reports task starts and ends."""

    _STATUS = re.compile(r"Task '([^']+)' finished with status (\w+)")
    _START = re.compile(r"Executing task '([^']+)'")
    _COLOR = re.compile(r"\x1b\[[0-9;]*m")

    def __init__(self, sink: Any, on_task: Callable[[str, str], None] | None) -> None:
        super().__init__()
        self.sink = sink
        self.on_task = on_task
        self.tasks: dict[str, str] = {}
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.sink.write(text)
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._scan(self._COLOR.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.sink.flush()

    def _scan(self, line: str) -> None:
        if " - " not in line:  # a task's own output, not a kfp.local status line
            return
        found = self._STATUS.search(line)
        if found:
            self.tasks[found.group(1)] = found.group(2)
            if self.on_task:
                self.on_task(found.group(1), found.group(2))
        elif self.on_task and (started := self._START.search(line)):
            self.on_task(started.group(1), "RUNNING")


def run_local(name: str, params: Mapping[str, Any] | None = None, *, pipeline_root: str | Path,
              log_path: str | Path | None = None,
              on_task: Callable[[str, str], None] | None = None) -> LocalRun:
    """Run a pipeline on this machine with kfp.local (subprocesses in this environment, no venv).

    Every task runs `python -m kfp.dsl.executor_main` with this interpreter and inherits the
    environment (LETHE_HOME, LETHE_* settings). A failed task does not raise: the result says so.
    `log_path`: where the tasks' output goes (default: this process's stdout).
    """
    from kfp import local

    params = dict(params or {})
    check_params(name, params)
    root = Path(pipeline_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=False)
    started = time.perf_counter()
    error = None
    with contextlib.ExitStack() as stack:
        if log_path is not None:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            sink = stack.enter_context(open(log_path, "a"))
        else:
            sink = sys.stdout
        stream = _TaskStream(sink, on_task)
        stack.enter_context(contextlib.redirect_stdout(stream))
        stack.enter_context(warnings.catch_warnings())
        # The lethe image's name has no "python" in it, and display names and resources mean
        # nothing locally: kfp.local warns about both on every task.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
        try:
            pipeline(name)(**params)
        except Exception as exc:  # kfp.local raises for invalid graphs or inputs even without raise_on_error
            error = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    failed = error is not None or any(state != "SUCCESS" for state in stream.tasks.values())
    if failed and error is None:
        error = "task(s) failed: " + ", ".join(t for t, s in stream.tasks.items() if s != "SUCCESS")
    return LocalRun(name=name, succeeded=not failed, seconds=seconds, pipeline_root=root,
                    tasks=dict(stream.tasks), error=error)


def _client(host: str, namespace: str | None = None) -> Any:
    import kfp

    try:
        return kfp.Client(host=host, namespace=namespace)
    except Exception as exc:  # connection refused, auth, bad URL: kfp raises many types
        raise PipelineError(f"cannot reach the KFP API at {host}: {exc}") from exc


def submit(name: str, params: Mapping[str, Any] | None, *, host: str, experiment: str,
           run_name: str | None = None, namespace: str | None = None) -> str:
    """Start one run on a KFP cluster; returns its run id."""
    params = dict(params or {})
    check_params(name, params)
    client = _client(host, namespace)
    try:
        result = client.create_run_from_pipeline_func(pipeline(name), arguments=params, run_name=run_name,
                                                      experiment_name=experiment, namespace=namespace)
    except Exception as exc:
        raise PipelineError(f"KFP refused the run: {exc}") from exc
    return str(result.run_id)


def schedule(name: str, params: Mapping[str, Any] | None, *, host: str, cron: str, job_name: str,
             experiment: str, namespace: str | None = None, max_concurrency: int = 1,
             catchup: bool = False) -> str:
    """Create a recurring run (six-field cron, seconds first); returns its id."""
    cron = validate_cron(cron)
    params = dict(params or {})
    check_params(name, params)
    client = _client(host, namespace)
    with tempfile.TemporaryDirectory(prefix="lethe-pipeline-") as tmp:
        package = compile_pipeline(name, Path(tmp) / f"{name}.yaml")
        try:
            exp = client.create_experiment(name=experiment, namespace=namespace)
            existing = _find_recurring_run(client, exp.experiment_id, job_name, namespace)
            if existing is not None:  # re-applying the scheduling Job must not double the runs
                return existing
            job = client.create_recurring_run(
                experiment_id=exp.experiment_id, job_name=job_name, cron_expression=cron,
                pipeline_package_path=str(package), params=params, max_concurrency=max_concurrency,
                no_catchup=not catchup, enabled=True)
        except Exception as exc:
            raise PipelineError(f"KFP refused the recurring run: {exc}") from exc
    return str(job.recurring_run_id)


def _find_recurring_run(client: Any, experiment_id: str, job_name: str, namespace: str | None) -> str | None:
    token = ""
    while True:
        page = client.list_recurring_runs(page_token=token, page_size=100, experiment_id=experiment_id,
                                          namespace=namespace)
        for job in page.recurring_runs or []:
            if job.display_name == job_name:
                return str(job.recurring_run_id)
        token = page.next_page_token or ""
        if not token:
            return None
