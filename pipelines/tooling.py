"""Compile, run locally (kfp.local), submit and schedule the pipelines. Used by `lethe pipeline`.

A local run of a pipeline that claims erasure requests is watched from this process: it renews the
run's lease while the run works (`lethe.ledger.LeaseHeartbeat`; when this process dies the beats stop
and the next run reclaims the requests), and when a task fails it records the task and the first
line of its error (`lethe.steps.outcome.write_failure`) before the exit task settles the requests,
so their reason says what failed rather than KFP's "Task exit-handler-1 failed.".
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import json
import re
import sys
import tempfile
import time
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lethe.errors import PipelineError
from pipelines import PIPELINES

CRON_FIELDS = ("second", "minute", "hour", "day of month", "month", "day of week")
CLAIMS_REQUESTS = frozenset({"scheduled"})  # pipelines whose runs hold leases on erasure requests
_ERROR_LINE_LIMIT = 400


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
    run_id: str = ""  # the KFP job id of the run (PIPELINE_JOB_ID_PLACEHOLDER): the ledger's run id
    failed_task: str | None = None  # the first task that failed
    failure: str = ""  # the first line of its error ("" when it left no traceback)


def first_error_line(lines: Iterable[str]) -> str:
    """The exception line of the last Python traceback in a task's output, module path dropped
    (`StorageError: cannot write ...`); "" when there is none (a task killed by a signal)."""
    lines = list(lines)
    starts = [i for i, line in enumerate(lines) if line.strip() == "Traceback (most recent call last):"]
    if not starts:
        return ""
    indent = len(lines[starts[-1]]) - len(lines[starts[-1]].lstrip())
    for line in lines[starts[-1] + 1:]:
        if line.strip() and len(line) - len(line.lstrip()) == indent:
            text = re.sub(r"^(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_]\w*(?::|$))", "", line.strip())
            return text[:_ERROR_LINE_LIMIT]
    return ""


#: Pipeline parameters that hold subject or sample ids: their values never reach a log.
ID_PARAMS = frozenset({"forget_ids", "forget_subjects"})


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


class _TaskStream(io.TextIOBase):
    """Stands in for stdout during a kfp.local run: kfp.local prints its own status lines and every
    task's streamed output there. Writes it all, line by line and through `redact`, to `sink` and
    reports task starts and ends."""

    _STATUS = re.compile(r"Task '([^']+)' finished with status (\w+)")
    _START = re.compile(r"Executing task '([^']+)'")
    _COLOR = re.compile(r"\x1b\[[0-9;]*m")

    def __init__(self, sink: Any, on_task: Callable[[str, str], None] | None,
                 on_failure: Callable[[str, str], None] | None = None,
                 redact: Callable[[str], str] = str) -> None:
        super().__init__()
        self.sink = sink
        self.redact = redact
        self.on_task = on_task
        self.on_failure = on_failure
        self.tasks: dict[str, str] = {}
        self.failure: tuple[str, str] | None = None  # (first failed task, its first error line)
        self._pending = ""
        self._output: deque[str] = deque(maxlen=400)  # the running task's latest lines

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:  # whole lines only: a value split over two writes is still redacted
            line = self.redact(line)
            self.sink.write(line + "\n")
            self._scan(self._COLOR.sub("", line))
        return len(text)

    def finish(self) -> None:
        """Write what is left of an unterminated last line."""
        if self._pending:
            self.sink.write(self.redact(self._pending))
            self._pending = ""
        self.sink.flush()

    def flush(self) -> None:
        self.sink.flush()

    def _scan(self, line: str) -> None:
        self._output.append(line)
        if " - " not in line:  # a task's own output, not a kfp.local status line
            return
        found = self._STATUS.search(line)
        if found:
            task, state = found.group(1), found.group(2)
            self.tasks[task] = state
            if state == "FAILURE" and self.failure is None:
                self.failure = (task, first_error_line(self._output))
                if self.on_failure:
                    self.on_failure(*self.failure)
            if self.on_task:
                self.on_task(task, state)
        elif started := self._START.search(line):
            self._output.clear()
            if self.on_task:
                self.on_task(started.group(1), "RUNNING")


@contextlib.contextmanager
def _pipeline_job_id(run_id: str) -> Iterator[None]:
    """Make `run_id` the job id of the next local run. kfp.local draws it at random when the run
    starts (its first draw; later draws are task ids), so nothing outside the run would know which
    run id the ledger's claims carry; this process needs it to renew the lease and record a failure."""
    from kfp.local import placeholder_utils

    draw = placeholder_utils.make_random_id
    unused = [run_id]
    placeholder_utils.make_random_id = lambda: unused.pop() if unused else draw()
    try:
        yield
    finally:
        placeholder_utils.make_random_id = draw


@contextlib.contextmanager
def _without_retries(component: Any) -> Iterator[None]:
    """Drop the tasks' retry policies while `component` runs locally. kfp.local honours them, but
    they are for a cluster's transient failures (a lost node, an API server restarting): on one
    machine a failed step would only fail again after the back-off."""
    spec = component.pipeline_spec
    saved = spec.SerializeToString()
    for dag in [spec.root.dag, *(c.dag for c in spec.components.values() if c.HasField("dag"))]:
        for task in dag.tasks.values():
            task.ClearField("retry_policy")
    try:
        yield
    finally:
        spec.ParseFromString(saved)  # the compiled pipeline keeps them


def _record_failure(run_id: str, task: str, error: str) -> None:
    from lethe.errors import LetheError
    from lethe.steps.outcome import write_failure

    try:
        write_failure(run_id, task, error)
    except LetheError as exc:  # the note is a courtesy; the run's failure is reported anyway
        print(f"lethe: cannot record the failure of run {run_id}: {exc}", file=sys.stderr)


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
    run_id = f"local-{uuid.uuid4().hex[:16]}"
    claims = name in CLAIMS_REQUESTS
    started = time.perf_counter()
    error = None
    with contextlib.ExitStack() as stack:
        # kfp.local swaps builtins.print for an indenting one while it runs a task and puts back what it
        # saw: two of its contexts interleaving leave every later print indented. Put back ours.
        stack.callback(setattr, builtins, "print", builtins.print)
        stack.enter_context(_pipeline_job_id(run_id))
        stack.enter_context(_without_retries(pipeline(name)))
        if claims:
            from lethe.ledger import LeaseHeartbeat

            stack.enter_context(LeaseHeartbeat(run_id))
        if log_path is not None:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            sink = stack.enter_context(open(log_path, "a"))
        else:
            sink = sys.stdout
        record = (lambda task, line: _record_failure(run_id, task, line)) if claims else None
        redact = id_redactor(params)
        stream = _TaskStream(sink, on_task, on_failure=record, redact=redact)
        stack.callback(stream.finish)  # runs before the log file closes (entered after it)
        stack.enter_context(contextlib.redirect_stdout(stream))
        stack.enter_context(warnings.catch_warnings())
        # The lethe image's name has no "python" in it, and display names and resources mean
        # nothing locally: kfp.local warns about both on every task.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
        try:
            pipeline(name)(**params)
        except Exception as exc:  # kfp.local raises for invalid graphs or inputs even without raise_on_error
            error = redact(f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - started
    failed = error is not None or any(state != "SUCCESS" for state in stream.tasks.values())
    if failed and error is None:
        error = "task(s) failed: " + ", ".join(t for t, s in stream.tasks.items() if s != "SUCCESS")
        if stream.failure and stream.failure[1]:
            error += f" ({stream.failure[0]}: {stream.failure[1]})"
    failed_task, failure = stream.failure or (None, "")
    return LocalRun(name=name, succeeded=not failed, seconds=seconds, pipeline_root=root,
                    tasks=dict(stream.tasks), error=error, run_id=run_id, failed_task=failed_task,
                    failure=failure)


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


@dataclass
class Scheduled:
    """What `schedule` did: `created`, `unchanged`, or `replaced` (`replaced_id` deleted, then the
    new one created; `changes` says what differed)."""

    action: str
    recurring_run_id: str
    job_name: str
    cron: str
    pipeline_version: str
    replaced_id: str | None = None
    changes: tuple[str, ...] = ()


def schedule(name: str, params: Mapping[str, Any] | None, *, host: str, cron: str, job_name: str,
             experiment: str, namespace: str | None = None, max_concurrency: int = 1,
             catchup: bool = False, replace: bool = False) -> Scheduled:
    """Make `job_name` the recurring run (six-field cron, seconds first) of this pipeline as compiled here.

    The pipeline is compiled with this environment's settings (image, GPU, resources, retries) and
    uploaded once as the pipeline version `<pipeline>-<first 12 hex of the YAML's sha256>`. A recurring
    run of that name with the same version, cron, parameters, concurrency and catch-up is left alone
    (`unchanged`); one that differs is refused unless `replace`. KFP cannot update a recurring run, so
    replacing deletes it, then creates the new one: between the two no run of that name is scheduled,
    and when the create fails none is (the error says so; running the command again creates it)."""
    cron = validate_cron(cron)
    params = dict(params or {})
    check_params(name, params)
    component = pipeline(name)
    client = _client(host, namespace)
    with tempfile.TemporaryDirectory(prefix="lethe-pipeline-") as tmp:
        package = compile_pipeline(name, Path(tmp) / f"{name}.yaml")
        version_name = f"{component.name}-{hashlib.sha256(package.read_bytes()).hexdigest()[:12]}"
        wanted = {"cron": cron, "pipeline version": version_name, "parameters": params,
                  "max concurrency": max_concurrency, "catch-up": catchup}
        try:
            experiment_id = client.create_experiment(name=experiment, namespace=namespace).experiment_id
            existing = _find_recurring_run(client, experiment_id, job_name, namespace)
            current = _settings_of(client, existing) if existing is not None else {}
        except Exception as exc:
            raise PipelineError(f"KFP refused the recurring run: {exc}") from exc
        changes = tuple(f"{key} {current.get(key)!r} -> {value!r}" for key, value in wanted.items()
                        if _plain(current.get(key)) != _plain(value))
        if existing is not None:
            existing_id = str(existing.recurring_run_id)
            if not changes:
                return Scheduled("unchanged", existing_id, job_name, cron, version_name)
            if not replace:
                raise PipelineError(f"recurring run {job_name} ({existing_id}) exists with other settings: "
                                    f"{'; '.join(changes)}. Pass --replace to delete it and create it anew "
                                    "(KFP cannot update a recurring run)")
        try:
            pipeline_id, version_id = _pipeline_version(client, package, component.name, version_name,
                                                        namespace)
        except Exception as exc:
            raise PipelineError(f"KFP refused the pipeline version {version_name}: {exc}; "
                                "nothing was changed") from exc
        if existing is not None:
            try:
                client.delete_recurring_run(existing_id)
            except Exception as exc:
                raise PipelineError(f"KFP refused to delete recurring run {job_name} ({existing_id}): {exc}; "
                                    "nothing was changed") from exc
        try:
            job = client.create_recurring_run(
                experiment_id=experiment_id, job_name=job_name, cron_expression=cron, params=params,
                pipeline_id=pipeline_id, version_id=version_id, max_concurrency=max_concurrency,
                no_catchup=not catchup, enabled=True)
        except Exception as exc:
            gone = (f"; the old recurring run {existing_id} was deleted, so none is scheduled now: "
                    "run the command again" if existing is not None else "")
            raise PipelineError(f"KFP refused the recurring run: {exc}{gone}") from exc
    if existing is None:
        return Scheduled("created", str(job.recurring_run_id), job_name, cron, version_name)
    return Scheduled("replaced", str(job.recurring_run_id), job_name, cron, version_name,
                     replaced_id=existing_id, changes=changes)


def _plain(value: Any) -> Any:
    """Parameters come back from the API as JSON: 50 may read 50.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _settings_of(client: Any, job: Any) -> dict[str, Any]:
    """What `schedule` compares of an existing recurring run (the API's V2beta1RecurringRun)."""
    cron_schedule = getattr(job.trigger, "cron_schedule", None) if job.trigger else None
    reference = job.pipeline_version_reference
    version = "(a pipeline package, no version)"
    if reference is not None and reference.pipeline_version_id:
        found = client.get_pipeline_version(reference.pipeline_id, reference.pipeline_version_id)
        version = found.display_name
    parameters = (job.runtime_config.parameters if job.runtime_config else None) or {}
    return {"cron": cron_schedule.cron if cron_schedule else None, "pipeline version": version,
            "parameters": dict(parameters), "max concurrency": int(job.max_concurrency or 0),
            "catch-up": not job.no_catchup}


def _pipeline_version(client: Any, package: Path, pipeline_name: str, version_name: str,
                      namespace: str | None) -> tuple[str, str]:
    """(pipeline id, version id) of `version_name`, uploaded unless it is there already."""
    pipeline_id = client.get_pipeline_id(pipeline_name)
    if pipeline_id is None:
        pipeline_id = client.upload_pipeline(str(package), pipeline_name=pipeline_name,
                                             namespace=namespace).pipeline_id
    token = ""
    while True:
        page = client.list_pipeline_versions(pipeline_id, page_token=token, page_size=100)
        for version in page.pipeline_versions or []:
            if version.display_name == version_name:
                return pipeline_id, version.pipeline_version_id
        token = page.next_page_token or ""
        if not token:
            break
    version = client.upload_pipeline_version(str(package), pipeline_version_name=version_name,
                                             pipeline_id=pipeline_id)
    return pipeline_id, version.pipeline_version_id


def _find_recurring_run(client: Any, experiment_id: str, job_name: str, namespace: str | None) -> Any | None:
    token = ""
    while True:
        page = client.list_recurring_runs(page_token=token, page_size=100, experiment_id=experiment_id,
                                          namespace=namespace)
        for job in page.recurring_runs or []:
            if job.display_name == job_name:
                return job
        token = page.next_page_token or ""
        if not token:
            return None
