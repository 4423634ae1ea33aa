"""What the local runner needs from kfp.local (2.17) that kfp.local offers no API for, in one place.

- Task starts and ends: kfp.local has no callback; it logs "Executing task 'x'" and "Task 'x' finished
  with status S" through the root logger (kfp/local/task_dispatcher.py). `task_events` reads those
  records with a filter on the root logger, apart from the tasks' own output.
- A failed task's error: kfp.local prints each task's output (its traceback included) with `print`
  into this process's stdout and keeps nothing else. `TaskOutput` stands in for stdout, writes it all
  to the log through a redactor, and keeps the running task's last lines for `first_error_line`.
- The run's job id (PIPELINE_JOB_ID_PLACEHOLDER, the ledger's run id): kfp.local draws it at random
  and tells no one; `pipeline_job_id` makes its first draw ours.
- `builtins.print`: kfp.local swaps it for an indenting one while a task runs and puts back what it
  saw; two ParallelFor tasks (threads) interleaving leave every later print indented. `print_kept`
  puts back ours.

Each of these reads or patches kfp.local's internals: check them when kfp is upgraded
(tests/pipelines/test_local_run.py and test_audit_pipelines.py run them end to end).
"""

from __future__ import annotations

import builtins
import contextlib
import io
import logging
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_ERROR_LINE_LIMIT = 400
_COLOR = re.compile(r"\x1b\[[0-9;]*m")
_STARTED = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")


class _TaskRecords(logging.Filter):
    """Calls `on_event(task, state)` (RUNNING, SUCCESS, FAILURE) for kfp.local's task records; lets
    every record through."""

    def __init__(self, on_event: Callable[[str, str], None]) -> None:
        super().__init__()
        self.on_event = on_event

    def filter(self, record: logging.LogRecord) -> bool:
        text = _COLOR.sub("", record.getMessage())
        if finished := _FINISHED.match(text):
            self.on_event(finished.group(1), finished.group(2))
        elif started := _STARTED.match(text):
            self.on_event(started.group(1), "RUNNING")
        return True


@contextlib.contextmanager
def task_events(on_event: Callable[[str, str], None]) -> Iterator[None]:
    """`on_event(task, state)` for every task kfp.local starts and ends while the block runs."""
    root = logging.getLogger()
    records = _TaskRecords(on_event)
    root.addFilter(records)
    try:
        yield
    finally:
        root.removeFilter(records)


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


class TaskOutput(io.TextIOBase):
    """Stands in for stdout while kfp.local runs: writes whole lines, each through `redact`, to `sink`,
    and keeps the latest lines of the running task (`task_started` starts afresh)."""

    def __init__(self, sink: Any, redact: Callable[[str], str] = str) -> None:
        super().__init__()
        self.sink = sink
        self.redact = redact
        self._pending = ""
        self._lines: deque[str] = deque(maxlen=400)
        self._lock = threading.Lock()  # ParallelFor tasks print from several threads

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
            for line in lines:  # whole lines only: a value split over two writes is still redacted
                line = self.redact(line)
                self.sink.write(line + "\n")
                self._lines.append(_COLOR.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.sink.flush()

    def task_started(self) -> None:
        with self._lock:
            self._lines.clear()

    def error_line(self) -> str:
        """The exception line of the running task's output ("" when it printed no traceback)."""
        with self._lock:
            return first_error_line(self._lines)

    def finish(self) -> None:
        """Write what is left of an unterminated last line."""
        with self._lock:
            if self._pending:
                self.sink.write(self.redact(self._pending))
                self._pending = ""
        self.sink.flush()


@contextlib.contextmanager
def pipeline_job_id(run_id: str) -> Iterator[None]:
    """Make `run_id` the job id of the next local run. kfp.local draws it at random when the run
    starts (its first draw; later draws are task ids), so nothing outside the run would know which
    run id the ledger's claims carry; the runner needs it to renew the lease and record a failure."""
    from kfp.local import placeholder_utils

    draw = placeholder_utils.make_random_id
    unused = [run_id]
    placeholder_utils.make_random_id = lambda: unused.pop() if unused else draw()
    try:
        yield
    finally:
        placeholder_utils.make_random_id = draw


@contextlib.contextmanager
def print_kept() -> Iterator[None]:
    """`builtins.print` as it was before the block, whatever kfp.local left in its place."""
    saved = builtins.print
    try:
        yield
    finally:
        builtins.print = saved


@contextlib.contextmanager
def logging_kept() -> Iterator[None]:
    """The root logger's handlers and level as they were before the block. kfp.local swaps them for a
    handler on the stdout of the moment (lethe's TaskOutput) around each task, from several threads
    under a ParallelFor: the swaps interleave and a handler on a closed log file could stay behind."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
