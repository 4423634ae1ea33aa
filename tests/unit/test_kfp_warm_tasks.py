"""kfp.local's tasks forked from a warm server (`lethe.kfp.warm_tasks`): each is still a process of its
own, with the environment and working directory of the moment it starts, its output and its exit code.

The server is process-wide, so these run in a fresh interpreter with nothing preloaded (seconds).
No `from __future__ import annotations`: KFP reads the toy component's annotations as types."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lethe.errors import ConfigError
from lethe.kfp import warm_tasks

TASK_MODULE = '''
import os, signal, sys
print("to stdout", flush=True)
print("to stderr", file=sys.stderr, flush=True)
print(f"argv={sys.argv[1:]} cwd={os.getcwd()} seen={os.environ.get('PROBE_SEEN')} "
      f"gone={os.environ.get('PROBE_GONE')} runtime={os.environ.get('_KFP_RUNTIME')}", flush=True)
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
if sys.argv[1] == "raise":
    raise ValueError("the task failed")
sys.exit(int(sys.argv[1]))
'''

RUNNER = r'''
import contextlib, io, json, os, sys
from multiprocessing import forkserver
sys.path.insert(0, sys.argv[1])
from kfp import dsl, local
from lethe.kfp.warm_tasks import run_warm, warm_tasks

os.environ["PROBE_GONE"] = "set when the server started"
results = {}
with warm_tasks("warm", preload=()):
    del os.environ["PROBE_GONE"]
    os.environ["PROBE_SEEN"] = "set after"
    os.chdir(sys.argv[2])
    for how in ("0", "3", "raise", "kill"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = run_warm("probe_task", [how], "", {**os.environ, "_KFP_RUNTIME": "true"})
        results[how] = {"code": code, "output": out.getvalue()}

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def parent_of_task() -> int:
        import os
        return os.getppid()

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2])
    with contextlib.redirect_stdout(io.StringIO()):
        results["ppid"] = parent_of_task().output
results["server"] = forkserver._forkserver._forkserver_pid
results["server_streams"] = [os.readlink(f"/proc/{results['server']}/fd/{fd}") for fd in (1, 2)]
print("the caller's stderr still reaches its reader", file=sys.stderr)
print(json.dumps(results))
'''


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    modules = tmp_path_factory.mktemp("modules")
    (modules / "probe_task.py").write_text(TASK_MODULE)
    (modules / "runner.py").write_text(RUNNER)  # a file: KFP reads a component's source
    workdir = tmp_path_factory.mktemp("workdir")
    done = subprocess.run([sys.executable, str(modules / "runner.py"), str(modules), str(workdir)],
                          capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"workdir": str(workdir), "stderr": done.stderr, **json.loads(done.stdout.splitlines()[-1])}


@pytest.mark.slow  # a fresh interpreter that imports kfp and starts a server
def test_a_warm_task_streams_its_output_and_sees_the_environment_and_directory_of_its_start(runs) -> None:
    output = runs["0"]["output"]
    assert runs["0"]["code"] == 0
    assert "to stdout\n" in output and "to stderr\n" in output  # both streams, line by line
    assert (f"argv=['0'] cwd={runs['workdir']} seen=set after gone=None runtime=true\n") in output
    assert output.endswith("\n\n\n")  # the blank line kfp.local prints after each task


@pytest.mark.slow  # a fresh interpreter that imports kfp and starts a server
def test_a_warm_task_ends_with_its_exit_code_its_exception_or_its_signal(runs) -> None:
    assert runs["3"]["code"] == 3
    assert runs["raise"]["code"] == 1
    assert "Traceback (most recent call last):" in runs["raise"]["output"]
    assert "ValueError: the task failed" in runs["raise"]["output"]
    assert runs["kill"]["code"] == -9 and "to stdout" in runs["kill"]["output"]


@pytest.mark.slow  # a fresh interpreter that imports kfp and starts a server
def test_kfp_local_runs_a_lightweight_component_as_a_child_of_the_warm_server(runs) -> None:
    assert runs["ppid"] == runs["server"]


@pytest.mark.slow  # a fresh interpreter that imports kfp and starts a server
def test_the_server_holds_no_end_of_the_callers_output(runs) -> None:
    # A reader of the caller's output (a pipe, capture_output) gets its end when the caller exits,
    # not seconds later when the server has torn down what it imported.
    assert runs["server_streams"] == [os.devnull, os.devnull]
    assert "the caller's stderr still reaches its reader" in runs["stderr"]  # the caller's are back


def test_only_kfps_launcher_run_by_this_interpreter_is_taken(tmp_path: Path) -> None:
    from kfp import dsl
    from kfp.local.subprocess_task_handler import replace_python_executable

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def hello(name: str) -> str:
        return name

    container = hello.component_spec.implementation.container
    command = [*container.command, *container.args]
    here = replace_python_executable(command, sys.executable)
    module, args, source = warm_tasks.parse_launch(here)
    assert module == "kfp.dsl.executor_main" and "def hello(name: str) -> str:" in source
    assert args == ["--component_module_path", "$program_path/ephemeral_component.py", *container.args]
    assert warm_tasks.parse_launch(command) is None  # `python3`, not this interpreter
    assert warm_tasks.parse_launch(replace_python_executable(command, "/usr/bin/python3.99")) is None
    with_pip = [here[0], here[1], "python3 -m pip install x && " + here[2], *here[3:]]
    assert warm_tasks.parse_launch(with_pip) is None
    assert warm_tasks.parse_launch(["python3", "-m", "kfp.dsl.executor_main"]) is None


@pytest.mark.parametrize("value", ["warm", "subprocess", ""])
def test_the_mode_is_read_from_the_environment(monkeypatch, value: str) -> None:
    monkeypatch.setenv(warm_tasks.MODE_VARIABLE, value)
    assert warm_tasks.mode() == (value or "warm")


def test_an_unknown_mode_is_refused(monkeypatch) -> None:
    monkeypatch.setenv(warm_tasks.MODE_VARIABLE, "hot")
    with pytest.raises(ConfigError, match="LETHE_LOCAL_TASKS must be one of warm, subprocess, not 'hot'"):
        warm_tasks.mode()
