"""Scheduled runs that die or fill the disk, through the installed console script and kfp.local.

One sequence on one lethe home (kfp.local runs cost 10-60 s each, so the faults share runs):
  1. SIGKILL the whole run (its process group) as soon as collect has claimed the requests;
  2. the next run finds nothing pending, reclaims the expired leases, and fails cleanly on a full
     disk (ENOSPC injected in the storage layer on the importances cache's sidecar): the requests
     are back to pending with a reason naming the step and its error; the cache keeps an entry
     without its sidecar; the user sees a one-line error, no traceback;
  3. the next run recomputes that entry (no dead end) and is SIGKILLed as unlearning starts;
  4. the next run, with nothing else pending, settles every request.
Kills happen at task boundaries, read from the progress lines the CLI prints, not after a sleep.
(A kill after register-and-gate leaves the same ledger state as 3, with the champion moved on; it
costs three more tasks, so it is not run here.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.pipelines.helpers import file_requests, lethe_home, register_champion, states

pytestmark = pytest.mark.slow
SUBJECTS = ["subject-00003", "subject-00004"]
UNKNOWN = "nobody-we-know"
LEASE_SECONDS = 5  # a heartbeat every 5/3 s keeps a working run's lease; a dead run's ends in 5 s

# Started in every Python process of the run when LETHE_TEST_ENOSPC is set (PYTHONPATH): writes
# through the local storage backend to a URI ending in it fail as on a full disk.
FULL_DISK = '''
import errno, os
_suffix = os.environ.get("LETHE_TEST_ENOSPC")
if _suffix:
    from lethe.storage.backends import local as _local

    _write = _local.LocalBackend._write_via_temp

    def _write_via_temp(self, uri, fill):
        if str(uri).endswith(_suffix):
            def fill(tmp):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
        return _write(self, uri, fill)

    _local.LocalBackend._write_via_temp = _write_via_temp
'''


@pytest.fixture
def home(tmp_path: Path, digits_convnet_dir: Path, monkeypatch: pytest.MonkeyPatch):
    with lethe_home(tmp_path / "lethe") as root:
        monkeypatch.setenv("LETHE_LEASE_SECONDS", str(LEASE_SECONDS))
        register_champion(digits_convnet_dir)
        yield root


def _run(home: Path, *params: str, kill_at: tuple[str, str] | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`lethe pipeline run --local scheduled` in its own process group; with `kill_at` (task,
    state), SIGKILL the whole group when the CLI reports that task in that state."""
    lethe = Path(sys.executable).with_name("lethe")
    command = [str(lethe), "pipeline", "run", "--local", "scheduled", *(f"-p{p}" for p in params)]
    process = subprocess.Popen(command, cwd=home,
                               env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    progress = []
    assert process.stderr is not None
    for line in process.stderr:
        progress.append(line)
        if kill_at is not None and tuple(line.split()) == kill_at:
            os.killpg(process.pid, signal.SIGKILL)
            break
    out, err = process.communicate(timeout=900)
    if kill_at is not None:
        assert process.returncode == -signal.SIGKILL, f"never reached {kill_at}: {''.join(progress)}{err}"
        _wait_until_gone(process.pid)
    return subprocess.CompletedProcess(process.args, process.returncode, out, "".join(progress) + err)


def _wait_until_gone(group: int) -> None:
    """Every process of the killed run has exited (none writes to the ledger behind the next run)."""
    for _ in range(100):
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes of group {group} survived SIGKILL")


def _wait_for_leases_to_expire() -> None:
    from lethe.ledger import Ledger

    ends = [r.lease_expires_at for r in Ledger().list_requests("in_progress")]
    assert ends, "the killed run held no request"
    left = (max(ends) - datetime.now(UTC)).total_seconds()
    assert left <= LEASE_SECONDS, f"the lease lasts {left:.0f} s more: LETHE_LEASE_SECONDS was not used"
    time.sleep(max(0.0, left) + 0.2)


def test_killed_and_full_disk_runs_leave_no_stuck_request_and_no_dead_end(home: Path, tmp_path: Path) -> None:
    from lethe.ledger import Ledger

    valid = file_requests(SUBJECTS)
    unknown = file_requests([UNKNOWN])[0]
    ledger = Ledger()

    # 1. Killed right after the claim: the requests are held by a run that no longer exists.
    _run(home, kill_at=("compute-importances", "RUNNING"))
    assert [states()[i] for i in valid] == ["in_progress", "in_progress"]
    assert ledger.list_requests("pending") == []
    _wait_for_leases_to_expire()

    # 2. Nothing pending, yet the run reclaims the dead run's requests; then the disk is full.
    site = tmp_path / "full-disk"
    site.mkdir()
    (site / "sitecustomize.py").write_text(FULL_DISK)
    failed = _run(home, env={"PYTHONPATH": str(site), "LETHE_TEST_ENOSPC": ".safetensors.sha256"})
    assert failed.returncode == 1
    assert "compute-importances" in failed.stdout and "No space left on device" in failed.stdout
    assert "Traceback" not in failed.stdout + failed.stderr  # the task logs hold it, not the terminal
    for request_id in valid:
        request = ledger.get(request_id)
        assert request.state == "pending", request
        assert request.reason.startswith("released: the run ended failed: step compute-importances failed: "
                                         "StorageError: cannot write "), request.reason
        assert request.reason.endswith("No space left on device")
        notes = [t.note or "" for t in ledger.history(request_id)]
        assert any("expired" in note for note in notes)
    assert states()[unknown] == "failed"
    entries = list((home / "artifacts" / "importances").rglob("*.safetensors"))
    assert len(entries) == 1 and not Path(f"{entries[0]}.sha256").exists()  # data without its sidecar

    # 3. The unfinished cache entry is recomputed (before: "no recorded sha256; refusing to trust it"
    #    in every later run); the run is killed as unlearning starts.
    _run(home, kill_at=("unlearn", "RUNNING"))
    assert Path(f"{entries[0]}.sha256").exists()
    assert [states()[i] for i in valid] == ["in_progress", "in_progress"]
    _wait_for_leases_to_expire()

    # 4. Nothing pending: the next run takes the dead run's requests and settles every one.
    assert ledger.list_requests("pending") == []
    done = _run(home, "refresh=false")
    assert done.returncode == 0, f"{done.stdout}{done.stderr[-3000:]}"
    final = states()
    assert final[unknown] == "failed"
    assert {final[i] for i in valid} <= {"fulfilled", "needs_review"}, final
    assert ledger.list_requests("in_progress") == [] and ledger.list_requests("pending") == []
