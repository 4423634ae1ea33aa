"""`lethe pipeline submit|schedule` refuse a bad host, cron or parameter in seconds, in one line, before
kfp or the pipelines are imported, and send nothing (the console script, as a person runs it)."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

#: The refusal's own cost (the child's CPU time), and its wall time with room for a machine whose cores
#: other jobs share: before the checks came first, kfp's client retried for 41-47 s.
REFUSAL_SECONDS = 3.0
WALL_SECONDS = 10.0
CHECKOUT = Path(__file__).resolve().parents[2]


@pytest.fixture
def listening_host() -> Iterator[tuple[str, list[str]]]:
    """A loopback port that accepts connections and records each one: a KFP host that is there."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    accepted: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            accepted.append("connection")
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    stop.set()
    thread.join()
    server.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _lethe(*args: str) -> tuple[subprocess.CompletedProcess[str], tuple[float, float], list[str]]:
    """Runs `lethe ARGS` in a fresh interpreter; (result, (wall, CPU) seconds, the kfp/pipelines modules
    it loaded)."""
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('LOADED', ','.join(sorted(\n"
            "    m for m in sys.modules if m.split('.')[0] in ('kfp', 'pipelines', 'components')))))\n"
            "from lethe.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(CHECKOUT / "src"), str(CHECKOUT),
                                                                    os.environ.get("PYTHONPATH")]))}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    loaded_line = next((line for line in done.stdout.splitlines() if line.startswith("LOADED")), "LOADED ")
    return done, (wall, cpu), [m for m in loaded_line.removeprefix("LOADED ").split(",") if m]


@pytest.mark.parametrize(("args", "words"), [
    (["submit", "--host", "http://127.0.0.1:{closed}", "scheduled"], "cannot reach the KFP API"),
    (["submit", "--host", "http://no-such-host.invalid:8888", "scheduled"], "cannot reach the KFP API"),
    (["submit", "--host", "ml-pipeline:8888", "scheduled"], "--host must be the KFP API's http(s) URL"),
    (["schedule", "--host", "http://127.0.0.1:{closed}", "--cron", "0 2 * * *", "--name", "nightly",
      "scheduled"], "six"),
    (["schedule", "--host", "http://127.0.0.1:{closed}", "--cron", "0 0 2 * * *", "--name", "nightly",
      "scheduled"], "cannot reach the KFP API"),
])
def test_a_host_or_cron_that_cannot_work_is_refused_in_seconds_in_one_line(args, words):
    args = [arg.replace("{closed}", str(_closed_port())) for arg in args]
    done, seconds, loaded = _lethe("pipeline", *args)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and words in done.stderr, done.stderr
    assert loaded == [], "kfp or the pipelines were imported before the refusal"
    wall, cpu = seconds
    assert cpu <= REFUSAL_SECONDS and wall <= WALL_SECONDS, f"refused after {wall:.1f} s ({cpu:.1f} s CPU)"


@pytest.mark.parametrize("param", ["max_requests=abc", "lam=-1", "alpha=loud", "bogus=1", "refresh=maybe"])
def test_a_bad_parameter_is_refused_before_the_host_is_contacted(listening_host, param):
    host, accepted = listening_host
    for command in (["submit"], ["schedule", "--cron", "0 0 2 * * *", "--name", "nightly"]):
        done, seconds, loaded = _lethe("pipeline", *command, "--host", host, "scheduled", "-p", param)
        assert done.returncode == 2 and "pipeline" in done.stderr and done.stderr.strip().count("\n") == 0
        assert param.split("=")[0] in done.stderr
        assert loaded == [] and seconds[1] <= REFUSAL_SECONDS and seconds[0] <= WALL_SECONDS, seconds
    assert accepted == [], "a refused command connected to the host"
