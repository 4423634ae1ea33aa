"""kfp.local's tasks forked from a warm interpreter instead of started cold.

kfp.local's SubprocessRunner starts every task as a new Python (`sh -c '... python3 -m MODULE ...'`),
and each one imports torch, MLflow, kfp and Evidently again: 8-15 s per task on two cores, more than
the work of most of a small run's tasks. `warm_tasks` runs the same command in a child forked from a
server that imported them once (multiprocessing's forkserver, started with the run). Each task is still
a process of its own: its own memory, the environment and working directory the subprocess would have
had, its exit code, its output streamed line by line as kfp.local streams it. A command of any other
shape (another kfp, pip installs, another interpreter) runs as kfp.local runs it.
LETHE_LOCAL_TASKS=subprocess turns it off (every task a cold subprocess, as kfp.local does).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import shlex
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from multiprocessing import forkserver, popen_forkserver, spawn
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

#: Imported once, in the server: what the tasks import (steps, their libraries, KFP's executor).
PRELOAD = (
    "torch", "mlflow", "mlflow.pyfunc", "pandas", "matplotlib.pyplot", "boto3",
    "sklearn.linear_model", "sklearn.pipeline", "sklearn.preprocessing", "sklearn.datasets",
    "evidently", "evidently.metrics", "evidently.tests", "evidently.core.report",
    "evidently.legacy.renderers.html_widgets",
    "kfp.dsl.executor_main", "components.task_entry", "components.adapters",
    "lethe.steps.audit", "lethe.steps.collect", "lethe.steps.evaluate", "lethe.steps.finalize",
    "lethe.steps.full_importances", "lethe.steps.ladder", "lethe.steps.register", "lethe.steps.repair",
    "lethe.steps.retrain", "lethe.steps.retrain_rung", "lethe.steps.unlearn",
    "lethe.kfp.warm_tasks",
)
MODE_VARIABLE = "LETHE_LOCAL_TASKS"

# kfp's lightweight-component launcher (kfp/dsl/component_factory.py), after kfp.local has put its
# interpreter in place of `python3`: the source arrives as $0, the executor's arguments as "$@".
_LAUNCHER = re.compile(
    r'\s*program_path=\$\(mktemp -d\)\s+printf "%s" "\$0" > "\$program_path/ephemeral_component\.py"\s+'
    r'_KFP_RUNTIME=true (?P<python>\S+) -m (?P<module>[\w.]+)(?P<args>.*?)"\$@"\s*', re.S)
_PROGRAM_PATH = "$program_path"


def mode() -> str:
    """How local tasks start: "warm" (default) or "subprocess" (LETHE_LOCAL_TASKS, lethe.config)."""
    from lethe.config import settings

    return settings().local_tasks


def parse_launch(full_command: Sequence[str]) -> tuple[str, list[str], str] | None:
    """(module, its arguments with `$program_path` left in, the component's source) when the command
    is kfp's lightweight-component launcher run by this interpreter; None for anything else."""
    if len(full_command) < 4 or full_command[0] != "sh" or full_command[1] not in ("-c", "-ec"):
        return None
    launcher = _LAUNCHER.fullmatch(full_command[2])
    if launcher is None or launcher["python"] != sys.executable:
        return None
    return launcher["module"], [*shlex.split(launcher["args"]), *full_command[4:]], full_command[3]


def _run_in_child(module: str, args: list[str], source: str, env: dict[str, str],
                  output: Connection) -> None:
    """The task, in the forked child: output to the pipe, the subprocess's environment, the
    launcher's program file, then `python -m module args` (runpy, as the interpreter would)."""
    import runpy

    os.dup2(output.fileno(), 1)
    os.dup2(output.fileno(), 2)
    output.close()
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 (fds 1 and 2 outlive it)
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    os.environ.clear()
    os.environ.update(env)
    with tempfile.TemporaryDirectory(prefix="lethe-task-") as program_path:
        Path(program_path, "ephemeral_component.py").write_text(source)
        sys.argv = [module, *(arg.replace(_PROGRAM_PATH, program_path) for arg in args)]
        runpy.run_module(module, run_name="__main__", alter_sys=True)


class _TaskPopen(popen_forkserver.Popen):
    """The forkserver's launch without the parent's `__main__`: multiprocessing would run the parent's
    main script again in every child (the unguarded script of a user would start its run again); a
    task never needs it. spawn.get_preparation_data is swapped only while this launch reads it."""

    _lock = threading.Lock()

    def _launch(self, process_obj: Any) -> None:
        with self._lock:
            prepare = spawn.get_preparation_data

            def without_main(name: str) -> dict[str, Any]:
                data = prepare(name)
                data.pop("init_main_from_name", None)
                data.pop("init_main_from_path", None)
                return data

            spawn.get_preparation_data = without_main
            try:
                super()._launch(process_obj)
            finally:
                spawn.get_preparation_data = prepare


class _TaskProcess(multiprocessing.context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> _TaskPopen:
        return _TaskPopen(process_obj)


def run_warm(module: str, args: list[str], source: str, env: Mapping[str, str]) -> int:
    """One task in a child of the warm server; its output printed line by line (as kfp.local prints
    a subprocess's); returns its exit code (negative: the signal that ended it)."""
    context = multiprocessing.get_context("forkserver")
    reader, writer = context.Pipe(duplex=False)
    task = _TaskProcess(target=_run_in_child, args=(module, args, source, dict(env), writer),
                        name="lethe-task", daemon=False)
    task.start()
    writer.close()  # the child holds the only write end: end of file when it exits
    with open(reader.fileno(), encoding="utf-8", errors="replace", closefd=False) as lines:
        for line in lines:
            print(line, end="")
    reader.close()
    print("\n")  # as kfp.local does after a task's output
    task.join()
    return task.exitcode if task.exitcode is not None else 1


def start_server(preload: Sequence[str] = PRELOAD) -> None:
    """Start the warm server (if this process has none) and return at once: it imports `preload` while
    the caller goes on (builds the pipeline); the first task waits for it."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(preload))
    with _server_output_discarded():
        forkserver.ensure_running()


@contextlib.contextmanager
def _server_output_discarded() -> Iterator[None]:
    """The server started with /dev/null as its stdout and stderr (tasks send theirs through a pipe of
    their own). Otherwise the server keeps the caller's open after the caller exits, while it tears
    down torch, MLflow and Evidently (~5 s): whoever reads the caller's output to its end (a shell
    pipe, `subprocess.run(capture_output=True)`, a CI log) waits for that too."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


@contextlib.contextmanager
def warm_tasks(start: str = "warm", preload: Sequence[str] = PRELOAD) -> Iterator[None]:
    """While the block runs, kfp.local's SubprocessRunner tasks of kfp's launcher shape run warm
    (`start`: a `mode()`; "subprocess" changes nothing). The server starts now, in the background,
    importing `preload`, and lives as long as this process: later runs reuse it (as it is)."""
    if start != "warm":
        yield
        return
    from kfp.local import subprocess_task_handler as handler

    start_server(preload)
    cold = handler.run_local_subprocess

    def run_local_subprocess(full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        launch = parse_launch(full_command)
        if launch is None:
            return cold(full_command=full_command, env_vars=env_vars)
        module, args, source = launch
        return run_warm(module, args, source, {**os.environ, **(env_vars or {}), "_KFP_RUNTIME": "true"})

    handler.run_local_subprocess = run_local_subprocess
    try:
        yield
    finally:
        handler.run_local_subprocess = cold
