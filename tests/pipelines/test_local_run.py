"""The scheduled deletion pipeline, whole, through kfp.local (subprocess runner) on digits.

Each test gets its own lethe home (SQLite ledger and MLflow, local artifacts) with the shared
digits convnet registered as champion; the task subprocesses inherit LETHE_HOME.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.tooling import run_local
from tests.pipelines.helpers import file_requests, lethe_home, register_champion, states

pytestmark = pytest.mark.slow
SUBJECTS = ["subject-00003", "subject-00004"]
UNKNOWN = "nobody-we-know"


@pytest.fixture
def home(tmp_path: Path, digits_convnet_dir: Path):
    with lethe_home(tmp_path / "lethe") as root:
        register_champion(digits_convnet_dir)
        yield root


def _run(home: Path, **params):
    return run_local("scheduled", params, pipeline_root=home / "kfp", log_path=home / "kfp.log")


def _history_notes(request_id: str) -> list[str]:
    from lethe.ledger import Ledger

    return [t.note or "" for t in Ledger().history(request_id)]


def test_nothing_pending_is_a_clean_no_op(home, capsys):
    from lethe.cli import main

    assert main(["pipeline", "run", "--local", "scheduled", "-p", "max_requests=5"]) == 0
    captured = capsys.readouterr()
    assert "pipeline scheduled succeeded" in captured.out
    ran = [line.split()[0] for line in captured.err.splitlines() if line.endswith("SUCCESS")]
    assert ran == ["collect-requests", "finalize-requests"]
    assert (home / "kfp" / "logs" / "scheduled.log").is_file()
    from lethe.registry import Registry

    assert [v.version for v in Registry().versions()] == ["1"]
    assert states() == {}


def test_a_failed_step_fulfils_nothing_and_loses_nothing(home):
    valid = file_requests(SUBJECTS)
    unknown = file_requests([UNKNOWN])[0]
    run = _run(home, method="no-such-method")  # the importances step raises after the claim
    assert not run.succeeded
    assert run.tasks["compute-importances"] == "FAILURE"
    assert run.tasks["finalize-requests"] == "SUCCESS"  # the exit task ran anyway
    now = states()
    assert [now[i] for i in valid] == ["pending", "pending"]
    assert now[unknown] == "failed"
    for request_id in valid:
        assert any("released: the run ended failed" in note for note in _history_notes(request_id))
    from lethe.registry import Registry

    assert [v.version for v in Registry().versions()] == ["1"]


def test_the_scheduled_run_forgets_registers_and_settles(home):
    valid = file_requests(SUBJECTS)
    unknown = file_requests([UNKNOWN])[0]
    run = _run(home)
    assert run.succeeded, f"{run.error}; see {home / 'kfp.log'}"
    assert list(run.tasks) == ["collect-requests", "compute-importances", "unlearn", "evaluate",
                               "register-and-gate", "refresh-importances", "finalize-requests"]

    from lethe.ledger import Ledger
    from lethe.registry import Registry
    from lethe.storage import ImportancesCache

    registry = Registry()
    assert registry.champion_version() == "2"
    version = registry.version("2")
    assert set(version.request_ids) == set(valid) and unknown not in version.request_ids
    assert version.parent_version == "1"

    ledger = Ledger()
    for request_id in valid:
        request = ledger.get(request_id)
        assert (request.state, request.model_version) == ("fulfilled", "2")
        certificate = json.loads((home / "artifacts" / "certificates" / f"{request_id}.json").read_text())
        assert certificate["model_version"] == "2" and certificate["gate"]["decision"] == "pass"
    assert ledger.get(unknown).state == "failed"
    assert "unknown to the subject map" in ledger.get(unknown).reason

    # The new champion's importances are in the cache for the next run (on digits the search may
    # keep every weight, α at its maximum: then the champion's fingerprint is its parent's).
    fingerprint = version.tags["lethe.model_fingerprint"]
    cached = list((home / "artifacts" / "importances" / fingerprint).glob("*.safetensors"))
    assert len(cached) == 1
    assert ImportancesCache.sha256(str(cached[0]))
