"""The console script's exit (`lethe.cli.run`): the exit code of `main`, every atexit handler and other
threads' work done, the output flushed, and the interpreter's teardown of imported modules skipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each test is a fresh interpreter that imports lethe

PROGRAM = r'''
import atexit, sys, threading, time
from lethe import cli

class TornDown:
    def __del__(self):
        sys.__stderr__.write("module globals torn down\n")

keep = TornDown()  # a module global: the interpreter's teardown would collect it
atexit.register(lambda: print("atexit handler ran"))
returned = threading.Event()
answer = cli.main


def main_then_mark():
    try:
        return answer()
    finally:
        returned.set()


cli.main = main_then_mark  # a thread still at work when main returns: the exit waits for it
threading.Thread(target=lambda: (returned.wait(), time.sleep(0.3), print("thread finished")),
                 daemon=False).start()
print("unflushed output", end="")  # no newline: still in the buffer when main returns
sys.argv = ["lethe", *sys.argv[1:]]
cli.run()
'''


@pytest.mark.parametrize(("argv", "code"), [(["request", "show", "no-such-request"], 2),
                                            (["data", "info", "digits"], 0)])
def test_the_console_script_exits_with_mains_code_after_every_handler_without_the_teardown(
        tmp_path: Path, argv: list[str], code: int) -> None:
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    done = subprocess.run([sys.executable, str(program), *argv], capture_output=True, text=True,
                          timeout=120, env={"LETHE_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
                          cwd=tmp_path)
    assert done.returncode == code, done.stderr
    assert done.stdout.startswith("unflushed output")
    assert "thread finished" in done.stdout and done.stdout.rstrip().endswith("atexit handler ran")
    assert "module globals torn down" not in done.stderr  # no teardown
    assert "Traceback" not in done.stderr
    if code:
        assert done.stderr.splitlines() == ["lethe: error: no erasure request with id no-such-request"]


def test_an_exit_that_main_does_not_answer_is_the_usual_one(tmp_path: Path) -> None:
    # --version exits inside argparse (SystemExit): the interpreter's own exit, teardown included.
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    done = subprocess.run([sys.executable, str(program), "--version"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0 and "lethe " in done.stdout
    assert "module globals torn down" in done.stderr
