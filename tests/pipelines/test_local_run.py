"""The scheduled deletion pipeline, whole, through kfp.local (subprocess runner) on digits.

Each test gets its own lethe home (SQLite ledger and MLflow, local artifacts) with the shared
digits convnet registered as champion; the task subprocesses inherit LETHE_HOME. The full run goes
through the installed console script from a directory outside the checkout, with no PYTHONPATH:
the pipelines must come from the distribution, as for a user who ran `pip install`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipelines.helpers import file_requests, lethe_home, register_champion, states

pytestmark = pytest.mark.slow
CHECKOUT = Path(__file__).resolve().parents[2]
SUBJECTS = ["subject-00003", "subject-00004"]
UNKNOWN = "nobody-we-know"
PLANTED_KEY = "planted-subject-key-0123456789abcdef"
PLANTED_PASSWORD = "planted-Pa55word-for-the-leak-test"


@pytest.fixture
def home(tmp_path: Path, digits_convnet_dir: Path):
    with lethe_home(tmp_path / "lethe") as root:
        register_champion(digits_convnet_dir)
        yield root


def _run(home: Path, **params):
    from lethe.kfp.local import run_local

    return run_local("scheduled", params, pipeline_root=home / "kfp", log_path=home / "kfp.log")


def _run_installed(home: Path, workdir: Path, *, failed_requests: int = 0) -> dict[str, str]:
    """`lethe pipeline run --local scheduled` run by the console script in `workdir`; each task's
    final state, in the order they finished (from its progress lines on stderr). Its tasks must
    succeed; it exits 1 when `failed_requests` of the run's requests failed, and says so."""
    assert not workdir.resolve().is_relative_to(CHECKOUT)
    workdir.mkdir()
    lethe = Path(sys.executable).with_name("lethe")
    assert lethe.is_file(), "the console script is not installed: pip install -e ."
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    done = subprocess.run([str(lethe), "pipeline", "run", "--local", "scheduled"], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    log = home / "kfp" / "logs" / "scheduled.log"
    assert done.returncode == (1 if failed_requests else 0), f"{done.stdout}{done.stderr[-3000:]}; see {log}"
    assert "erasure requests:" in done.stdout  # the run's summary: its version and requests
    if failed_requests:
        assert "its tasks succeeded in" in done.stdout and f"{failed_requests} of" in done.stdout
        assert "request(s) FAILED" in done.stdout
    else:
        assert "pipeline scheduled succeeded" in done.stdout
    final: dict[str, str] = {}
    for line in done.stderr.splitlines():
        parts = line.split()
        if line.startswith("  ") and len(parts) == 2 and parts[1].isupper() and parts[1] != "RUNNING":
            final[parts[0]] = parts[1]
    return final


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
    # The runner saw which task failed and why (kfp.local's task records, the task's traceback).
    assert run.failed_task == "compute-importances"
    assert run.failure.startswith("ImportancesError: unknown importance method 'no-such-method'")
    now = states()
    assert [now[i] for i in valid] == ["pending", "pending"]
    assert now[unknown] == "failed"
    for request_id in valid:
        assert any("released: the run ended failed: step compute-importances failed: ImportancesError"
                   in note for note in _history_notes(request_id))
    from lethe.registry import Registry

    assert [v.version for v in Registry().versions()] == ["1"]


@pytest.mark.parametrize("bad", [{"alpha": "banana"}, {"lam": float("nan")}], ids=["alpha-word", "lam-nan"])
def test_a_run_started_without_the_cli_refuses_a_bad_parameter_before_it_claims(home, monkeypatch, bad):
    # The KFP UI (or a recurring run edited there) starts a run that no `lethe pipeline` command
    # checked: here, kfp.local with the runner's own check taken out. NaN is the value kfp.local once
    # failed to serialise after collect had claimed, and the exit task never ran.
    from lethe.kfp import local

    monkeypatch.setattr(local, "check_params", lambda name, params: dict(params or {}))
    valid = file_requests(SUBJECTS)
    run = _run(home, **bad)
    assert not run.succeeded
    if "alpha" in bad:
        assert run.failed_task == "collect-requests", run
        assert run.failure.startswith("PipelineError: pipeline parameter alpha"), run.failure
        assert run.tasks["finalize-requests"] == "SUCCESS"
    else:  # kfp.local refuses NaN for collect's own input: no task starts
        assert "collect-requests" not in run.tasks and "NaN" in (run.error or ""), run
    assert [states()[i] for i in valid] == ["pending", "pending"]
    for request_id in valid:  # never claimed, so nothing to release
        assert not any("claimed" in note or "released" in note for note in _history_notes(request_id))


def test_the_scheduled_run_forgets_registers_and_settles(home, tmp_path, monkeypatch, digits_train):
    # Planted secrets: the subject key (inherited by every task) and a password nothing may print.
    monkeypatch.setenv("LETHE_SUBJECT_KEY", PLANTED_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", PLANTED_PASSWORD)
    valid = file_requests(SUBJECTS)
    unknown = file_requests([UNKNOWN])[0]
    tasks = _run_installed(home, tmp_path / "elsewhere", failed_requests=1)  # the unknown subject
    # The ladder's first look at the gate (climb) says register: no repair, no retraining.
    assert list(tasks) == ["collect-requests", "compute-importances", "unlearn", "evaluate", "climb",
                           "register-and-gate", "settle-requests", "refresh-importances", "finalize-requests"]
    assert set(tasks.values()) == {"SUCCESS"}

    from lethe.ledger import Ledger
    from lethe.registry import Registry
    from lethe.steps.cache import ImportancesCache

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

    # Privacy: every file the run left (ledger, MLflow, artifacts, certificates, logs) and its output.
    from lethe.data import subject_map
    from tests.robustness.test_privacy import find_leaks

    secrets = [*SUBJECTS, UNKNOWN, PLANTED_KEY, PLANTED_PASSWORD]
    samples = [s for subject in SUBJECTS for s in subject_map(digits_train)[subject]]
    assert find_leaks(home, secrets) == [] and find_leaks(tmp_path / "elsewhere", secrets) == []
    # Sample ids: only in the ledger and the run's forget set (by design).
    assert find_leaks(home, samples, skip=("ledger.db", "forget.json")) == []


def test_ssd_runs_through_all_three_pipelines(home):
    """method=ssd end to end: the importances pipeline fills the cache with the champion's SSD
    importances, which the scheduled and the on-demand runs then unlearn with; what was run is
    recorded on each version and certificate. (Scheduled runs of the default, LFSSD, are above.)"""
    from lethe.config import settings
    from lethe.kfp.local import run_local
    from lethe.registry import Registry

    def cached(fingerprint: str) -> list[str]:
        folder = home / "artifacts" / "importances" / fingerprint
        return sorted(p.name for p in folder.glob("*.safetensors"))

    parent = Registry().version("1").tags["lethe.model_fingerprint"]
    sharded = run_local("importances", {"model": "champion", "num_shards": 2, "method": "ssd"},
                        pipeline_root=home / "kfp", log_path=home / "kfp.log")
    assert sharded.succeeded, f"{sharded.error}; see {home / 'kfp.log'}"
    assert [t for t in sharded.tasks if t.startswith("compute-importances-shard")] != []
    assert len(cached(parent)) == 1 and cached(parent)[0].endswith("-ssd-b1.safetensors")

    valid = file_requests(SUBJECTS)
    scheduled = _run(home, method="ssd", refresh=False)
    assert scheduled.succeeded, f"{scheduled.error}; see {home / 'kfp.log'}"
    assert "refresh-importances" not in scheduled.tasks
    assert len(cached(parent)) == 1  # the cached SSD importances were used: nothing else computed

    on_demand = run_local("unlearning", {"model": f"models:/{settings().model_name}/1", "forget_class": 5,
                                         "scenario": "class", "method": "ssd", "refresh": False},
                          pipeline_root=home / "kfp", log_path=home / "kfp.log")
    assert on_demand.succeeded, f"{on_demand.error}; see {home / 'kfp.log'}"
    assert len(cached(parent)) == 1

    registry = Registry()
    versions = {v.version: v for v in registry.versions()}
    assert set(versions) == {"1", "2", "3"} and versions["3"].parent_version == "1"
    for number in ("2", "3"):
        assert versions[number].tags["lethe.method"] == "ssd"
        assert "with SSD" in versions[number].description
    from lethe.ledger import Ledger

    for request_id in valid:
        request = Ledger().get(request_id)
        assert request.model_version == "2" and request.outcome["algorithm"] == "ssd"
