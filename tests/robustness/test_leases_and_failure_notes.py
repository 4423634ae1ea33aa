"""After a crash, no stuck request and no dead end (fast part; the whole pipeline is killed in
test_crashed_runs.py): expired leases are reclaimed even when nothing is pending, a heartbeat keeps a
working run's lease, an importances cache entry without its sidecar is recomputed, and the reason
on a failed run's requests names the failing step and its first error line."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from lethe.errors import ConfigError, StorageError
from lethe.ledger import IN_PROGRESS, PENDING, LeaseHeartbeat, Ledger
from lethe.storage.uris import sidecar_uri
from tests.pipelines.helpers import lethe_home, register_champion

KEY = b"k" * 32


@pytest.fixture
def home(tmp_path: Path, digits_convnet_dir: Path):
    with lethe_home(tmp_path / "lethe") as root:
        register_champion(digits_convnet_dir)
        yield root


def _claim_and_let_expire(ledger: Ledger, run_id: str) -> None:
    ledger.claim(run_id, lease=timedelta(milliseconds=1))
    time.sleep(0.05)


def test_a_run_with_nothing_pending_reclaims_a_dead_runs_requests(home: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from lethe.steps.collect import collect_requests

    ledger = Ledger()
    request = ledger.add("subject-00003").request
    _claim_and_let_expire(ledger, "dead-run")
    assert ledger.list_requests(PENDING) == []  # what made the next run a no-op before
    monkeypatch.setenv("LETHE_LEASE_SECONDS", "123")
    collected = collect_requests("next-run", forget_path=tmp_path / "forget.json",
                                 model_dir=tmp_path / "model")
    assert collected.num_requests == 1 and collected.request_ids == [request.id]
    now = ledger.get(request.id)
    assert (now.state, now.run_id) == (IN_PROGRESS, "next-run")
    assert now.lease_expires_at - now.claimed_at == timedelta(seconds=123)  # LETHE_LEASE_SECONDS
    notes = [t.note or "" for t in ledger.history(request.id)]
    assert any("lease of run dead-run expired" in note for note in notes)


def test_the_heartbeat_keeps_a_lease_alive_only_while_it_beats(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url, subject_key=KEY)
    request = ledger.add("s").request
    lease = timedelta(seconds=0.8)
    ledger.claim("run-h", lease=lease)
    with LeaseHeartbeat("run-h", ledger_url=url, lease=lease, interval=0.2) as heartbeat:
        time.sleep(2.0)  # two and a half leases
        assert ledger.reclaim_expired() == []
        assert ledger.get(request.id).state == IN_PROGRESS
    assert heartbeat.beats >= 3
    time.sleep(1.0)  # the beats stopped: the lease runs out
    assert ledger.renew("run-h", lease=lease) == 0  # an expired lease is not revived
    assert ledger.reclaim_expired() == [request.id]
    with pytest.raises(Exception, match="cannot keep"):
        LeaseHeartbeat("run-h", ledger_url=url, lease=lease, interval=1.0)


def test_the_lease_length_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from lethe.config import settings

    monkeypatch.setenv("LETHE_LEASE_SECONDS", "90")
    assert settings().lease_seconds == 90 and settings().heartbeat_seconds == 30
    for bad in ("0", "-5", "soon", "inf", "nan"):
        monkeypatch.setenv("LETHE_LEASE_SECONDS", bad)
        with pytest.raises(ConfigError, match="LETHE_LEASE_SECONDS"):
            settings().lease_seconds  # noqa: B018 (the property raises)


def test_an_importances_entry_without_its_sidecar_is_recomputed_not_a_dead_end(tmp_path: Path) -> None:
    from lethe.steps.cache import ImportancesCache
    from lethe.unlearning import Importances

    values = {"w": torch.rand(3, 4, generator=torch.Generator().manual_seed(0))}
    importances = Importances(values, method="lfssd", batch_size=1, num_batches=5, num_samples=5,
                              model_fingerprint="a" * 64)
    key = {"model_fingerprint": "a" * 64, "dataset_fingerprint": "d" * 64, "method": "lfssd", "batch_size": 1}
    cache = ImportancesCache(str(tmp_path / "artifacts"))
    uri = cache.put(importances, dataset_fingerprint="d" * 64)
    Path(sidecar_uri(uri)).unlink()  # the process died between the data and its sidecar
    assert cache.get(**key) is None  # a miss, never trusted, never an IntegrityError
    assert not Path(uri).exists()  # the unfinished entry is gone
    cache.put(importances, dataset_fingerprint="d" * 64)
    assert cache.get(**key) is not None


def test_a_failed_runs_requests_say_which_step_failed_and_why(home: Path) -> None:
    from lethe.steps.finalize import finalize_requests
    from lethe.steps.outcome import write_failure

    ledger = Ledger()
    request = ledger.add("subject-00003").request
    ledger.claim("run-f")
    error = "StorageError: cannot write /x/y.safetensors.sha256: No space left on device"
    write_failure("run-f", "compute-importances", error)
    write_failure("run-f", "exit-handler-1", "a later failure does not replace the first")
    settled = finalize_requests("run-f", pipeline_state="FAILED", error="Task exit-handler-1 failed.")
    assert settled.released == [request.id]
    now = ledger.get(request.id)
    assert now.state == PENDING
    assert now.reason == f"released: the run ended failed: step compute-importances failed: {error}"


def test_a_full_disk_while_writing_certificates_leaves_the_requests_settled(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lethe.steps import finalize
    from lethe.steps.outcome import write_outcome

    ledger = Ledger()
    request = ledger.add("subject-00003").request
    ledger.claim("run-c")
    write_outcome("run-c", {"decision": "pass", "version": "1", "request_ids": [request.id]})

    def full_disk(*_args: object, **_kwargs: object) -> list[str]:
        raise StorageError("cannot write certificates/x.json: No space left on device")

    monkeypatch.setattr(finalize, "export_certificates", full_disk)
    settled = finalize.finalize_requests("run-c")  # no exception: the ledger is settled first
    assert settled.fulfilled == [request.id] and settled.certificates == []
    assert "certificates not written" in settled.summary and "No space left" in settled.summary
    assert ledger.get(request.id).state == "fulfilled"


def test_the_first_error_line_of_a_task_is_its_last_tracebacks_exception() -> None:
    from lethe.kfp.local_hooks import first_error_line

    output = """    [KFP Executor 2026-11-30 06:43:18,022 INFO]: Got executor_input:
    Traceback (most recent call last):
      File "/x/backends/local.py", line 40, in _write_via_temp
        fill(tmp)
    OSError: [Errno 28] No space left on device: '/x/.y.part'

    The above exception was the direct cause of the following exception:

    Traceback (most recent call last):
      File "<frozen runpy>", line 198, in _run_module_as_main
        raise StorageError(f"cannot write {uri}: {exc.strerror or exc}") from exc
    lethe.errors.StorageError: cannot write /x/y.sha256: No space left on device
    second line of the message
"""
    expected = "StorageError: cannot write /x/y.sha256: No space left on device"
    assert first_error_line(output.splitlines()) == expected
    assert first_error_line(["killed by a signal, no traceback"]) == ""


def test_the_local_runner_leaves_the_root_loggers_handlers_as_it_found_them(tmp_path: Path) -> None:
    """kfp.local swaps the root logger's handlers around each task, from several threads under a
    ParallelFor: interleaved, a handler on the run's closed log file stayed behind, and the next log
    line anywhere in the process failed ("I/O operation on closed file")."""
    import logging
    import threading

    from lethe.kfp.local_hooks import logging_kept

    root = logging.getLogger()
    before, level = root.handlers[:], root.level
    log = open(tmp_path / "run.log", "w")  # noqa: SIM115 - closed below, as the runner's sink is
    with logging_kept():
        # Two tasks' swaps, interleaved as two threads can: B saves A's handler and puts it back last.
        saved_a = root.handlers[:]
        root.handlers[:] = [logging.StreamHandler(log)]
        saved_b = root.handlers[:]
        root.handlers[:] = [logging.StreamHandler(log)]
        root.handlers[:] = saved_a
        late = threading.Thread(target=lambda: root.handlers.__setitem__(slice(None), saved_b))
        late.start()
        late.join()
        root.setLevel(logging.INFO)
    log.close()
    assert root.handlers == before and root.level == level
    logging.getLogger("botocore.credentials").warning("a later line")  # no handler on the closed file
