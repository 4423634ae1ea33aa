"""The ledger on SQLite and on a real PostgreSQL server: lifecycle, killed runs, concurrent claims."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from lethe import cli
from lethe.errors import LedgerError
from lethe.ledger import FULFILLED, IN_PROGRESS, NEEDS_REVIEW, PENDING, Ledger

KEY = b"integration-key"
OUTCOME = {"model_name": "m", "metrics": {"forget_accuracy": 0.0},
           "gate": {"decision": "pass", "reasons": []}, "algorithm": "lfssd",
           "parameters": {"alpha": 8.0, "lam": 1.0}}


def snapshot(ledger: Ledger) -> list[tuple]:
    return [(r, tuple(ledger.history(r.id))) for r in ledger.list_requests()]


def test_request_lifecycle(ledger_url: str) -> None:
    ledger = Ledger(ledger_url, subject_key=KEY)
    a = ledger.add("subject-a", ["digits/train/1"]).request
    assert ledger.add("subject-a", ["digits/train/1"]).request.id == a.id  # idempotent
    assert ledger.add("subject-a", ["digits/train/2"]).merged_sample_ids == ("digits/train/2",)
    b = ledger.add("subject-b").request
    claimed = ledger.claim("run-1")
    assert {r.id for r in claimed} == {a.id, b.id} and {r.state for r in claimed} == {IN_PROGRESS}
    before = snapshot(ledger)
    with pytest.raises(LedgerError, match="nothing was changed"):
        ledger.fulfil([a.id, b.id], run_id="run-2", model_version="2", outcome=OUTCOME)
    assert snapshot(ledger) == before
    ledger.fulfil([a.id], run_id="run-1", model_version="2", outcome=OUTCOME)
    ledger.mark_needs_review([b.id], run_id="run-1", model_version="2", outcome=OUTCOME, reason="gate failed")
    assert ledger.get(a.id).state == FULFILLED and ledger.get(b.id).state == NEEDS_REVIEW
    assert [r.id for r in ledger.resolve_review("2", approved=False, by="dpo", reason="no")] == [b.id]
    assert ledger.get(b.id).state == PENDING
    history = [(t.from_state, t.to_state) for t in ledger.history(a.id)]
    assert history == [(None, PENDING), (PENDING, PENDING), (PENDING, IN_PROGRESS), (IN_PROGRESS, FULFILLED)]


CLAIM_AND_DIE = """
import sys, time
from datetime import timedelta
from lethe.ledger import Ledger
lease = timedelta(seconds=float(sys.argv[2]))
claimed = Ledger(sys.argv[1], subject_key=b"k").claim("doomed-run", lease=lease)
print(len(claimed), flush=True)
time.sleep(600)  # killed here, between claim and finalize
"""


def test_a_killed_run_gives_its_requests_back_after_the_lease(ledger_url: str) -> None:
    ledger = Ledger(ledger_url, subject_key=b"k")
    ids = {ledger.add(f"subject-{i}").request.id for i in range(5)}
    lease = 3.0
    worker = subprocess.Popen([sys.executable, "-c", CLAIM_AND_DIE, ledger_url, str(lease)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "5"
        claimed_at = time.monotonic()
    finally:
        worker.kill()  # SIGKILL: no cleanup, no release
        worker.wait()
    assert {r.state for r in ledger.list_requests()} == {IN_PROGRESS}
    assert ledger.claim("next-run") == []  # the lease still holds
    time.sleep(max(0.0, lease + 0.5 - (time.monotonic() - claimed_at)))
    assert set(ledger.reclaim_expired()) == ids
    assert {r.state for r in ledger.list_requests()} == {PENDING}
    assert {r.id for r in ledger.claim("next-run")} == ids
    notes = [t.note or "" for t in ledger.history(sorted(ids)[0])]
    assert any("lease of run doomed-run expired" in note for note in notes)


def test_concurrent_claimers_claim_each_request_exactly_once(ledger_url: str) -> None:
    ledger = Ledger(ledger_url, subject_key=KEY)
    ids = [ledger.add(f"subject-{i}").request.id for i in range(200)]
    claims: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(20)

    def claimer(run_id: str) -> None:
        mine = claims.setdefault(run_id, [])
        try:
            own = Ledger(ledger_url, subject_key=KEY)
            barrier.wait()
            while batch := own.claim(run_id, limit=3):
                mine.extend(r.id for r in batch)
        except BaseException as exc:  # surfaced below; a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(f"run-{i:02d}",)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[:3]
    claimed = [i for run in claims.values() for i in run]
    assert len(claimed) == 200 and set(claimed) == set(ids)  # each exactly once
    assert sum(1 for run in claims.values() if run) > 1  # really concurrent, not one greedy thread
    for request in ledger.list_requests():
        assert request.state == IN_PROGRESS and request.id in claims[request.run_id]
        assert [t.to_state for t in ledger.history(request.id)].count(IN_PROGRESS) == 1


def test_certificates_land_in_the_artifact_store(ledger_url: str, artifact_root: str,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from lethe import storage

    monkeypatch.setenv("LETHE_SUBJECT_KEY", "cli-key-of-at-least-32-bytes-for-hmac")
    assert cli.main(["request", "add", "--ledger", ledger_url, "--subject", "raw-subject-1",
                     "--samples", "digits/train/4", "--defer-check"]) == 0
    request_id = capsys.readouterr().out.split()[0]
    ledger = Ledger(ledger_url, subject_key=b"cli-key-of-at-least-32-bytes-for-hmac")
    ledger.claim("run-1")
    ledger.fulfil([request_id], run_id="run-1", model_version="3", outcome=OUTCOME)
    out = storage.join_uri(artifact_root, "certificates")
    assert cli.main(["request", "export", "--ledger", ledger_url, "--out", out]) == 0
    certificate = json.loads(storage.get_bytes(storage.join_uri(out, f"{request_id}.json")))
    assert certificate["request_id"] == request_id and certificate["model_version"] == "3"
    assert certificate["subject_hash"] == ledger.get(request_id).subject_hash
    assert "raw-subject-1" not in json.dumps(certificate)


def test_unreachable_s3_is_a_clear_error_and_the_ledger_is_unchanged(
        ledger_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from lethe.steps.cache import ImportancesCache
    from lethe.storage import s3

    ledger = Ledger(ledger_url, subject_key=KEY)
    done = ledger.add("s1").request
    ledger.add("s2")
    ledger.claim("run-1", request_ids=[done.id])
    ledger.fulfil([done.id], run_id="run-1", model_version="1", outcome=OUTCOME)
    ledger.claim("run-2", lease=timedelta(hours=1))
    before = snapshot(ledger)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    s3.reset_clients()
    start = time.monotonic()
    assert cli.main(["request", "export", "--ledger", ledger_url, "--out", "s3://lethe-it/certs"]) == 2
    err = capsys.readouterr().err
    # All or nothing (issue 16): the export says how far it got, why, and that it removed what it wrote.
    assert err.startswith("lethe: error: the export to s3://lethe-it/certs stopped after 0 of 1"), err
    assert "cannot reach the S3 endpoint http://127.0.0.1:9" in err and err.count("\n") == 1
    assert "Traceback" not in err
    cache = ImportancesCache("s3://lethe-it/cache")
    with pytest.raises(Exception, match="cannot reach the S3 endpoint"):
        cache.get(model_fingerprint="a" * 64, dataset_fingerprint="b" * 64, method="lfssd", batch_size=8)
    assert time.monotonic() - start < 30
    assert snapshot(ledger) == before
    s3.reset_clients()
