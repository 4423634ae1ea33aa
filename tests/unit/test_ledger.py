"""The erasure-request ledger on SQLite: states, idempotence, claims and leases, certificates, CLI."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lethe import cli
from lethe.commands import request as request_command
from lethe.errors import ConfigError, LedgerError
from lethe.ledger import (
    DEFAULT_DEADLINE_DAYS,
    FAILED,
    FULFILLED,
    IN_PROGRESS,
    NEEDS_REVIEW,
    PENDING,
    Ledger,
    certificate,
    export_certificates,
)

KEY = b"unit-test-key"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OUTCOME = {"model_name": "m", "metrics": {"forget_accuracy": 0.1}, "gate": {"decision": "pass"},
           "algorithm": "lfssd", "parameters": {"alpha": 10.0, "lam": 1.0}}


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(tmp_path: Path, clock: Clock) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", subject_key=KEY, clock=clock)


def snapshot(ledger: Ledger) -> list[tuple]:
    """Every request with its full history: equal snapshots mean nothing changed."""
    return [(r, tuple(ledger.history(r.id))) for r in ledger.list_requests()]


def test_a_request_is_pending_with_a_subject_hash_and_a_deadline(ledger: Ledger, tmp_path: Path) -> None:
    received = START - timedelta(days=2)
    result = ledger.add("subject-0042", ["digits/train/1", "digits/train/2"], received_at=received)
    request = result.request
    assert result.created and request.state == PENDING
    assert request.subject_hash == hmac.new(KEY, b"subject-0042", hashlib.sha256).hexdigest()
    assert request.deadline == received + timedelta(days=DEFAULT_DEADLINE_DAYS)
    assert request.sample_ids == ("digits/train/1", "digits/train/2")
    assert [(t.from_state, t.to_state) for t in ledger.history(request.id)] == [(None, PENDING)]
    assert b"subject-0042" not in (tmp_path / "ledger.db").read_bytes()  # only the hash is stored
    assert request_command.DEFAULT_DEADLINE_DAYS == DEFAULT_DEADLINE_DAYS


def test_the_deadline_is_configurable_and_overdue_requests_show(tmp_path: Path, clock: Clock) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}", subject_key=KEY, deadline_days=7, clock=clock)
    request = ledger.add("s", received_at=START).request
    assert request.deadline == START + timedelta(days=7) and not request.overdue
    clock.advance(days=8)
    assert ledger.get(request.id).overdue
    with pytest.raises(LedgerError, match="future"):
        ledger.add("t", received_at=clock.now + timedelta(days=1))


def test_without_a_subject_key_lethe_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LETHE_SUBJECT_KEY", raising=False)
    monkeypatch.delenv("LETHE_DEMO", raising=False)
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    with pytest.raises(ConfigError, match="LETHE_SUBJECT_KEY"):
        ledger.add("alice")
    assert ledger.list_requests() == []


def test_a_second_request_of_a_subject_is_idempotent(ledger: Ledger) -> None:
    first = ledger.add("alice", ["a", "b"]).request
    again = ledger.add("alice", ["b", "a"])
    assert not again.created and again.request.id == first.id and again.request.sample_ids == ("a", "b")
    merged = ledger.add("alice", ["b", "c"])  # pending: new samples join the open request
    assert not merged.created and merged.merged_sample_ids == ("c",)
    assert ledger.get(first.id).sample_ids == ("a", "b", "c")
    ledger.claim("run-1")
    frozen = ledger.add("alice", ["c", "d"])  # claimed: its samples are frozen, "d" opens a new request
    assert frozen.created and frozen.request.id != first.id and frozen.request.sample_ids == ("d",)
    assert ledger.add("alice", ["a"]).request.id == frozen.request.id  # covered: the pending one returns
    everything = ledger.add("alice")  # [] = every sample of the subject: widens the pending request
    assert everything.request.id == frozen.request.id and everything.request.sample_ids == ()
    assert ledger.add("alice", ["z"]).request.id == frozen.request.id
    assert len(ledger.list_requests()) == 2 and ledger.add("bob", ["a"]).created


def test_claims_take_pending_requests_by_deadline_once(ledger: Ledger) -> None:
    late = ledger.add("late", received_at=START).request
    early = ledger.add("early", received_at=START - timedelta(days=10)).request
    other = ledger.add("other", received_at=START - timedelta(days=5)).request
    claimed = ledger.claim("run-1", limit=2)
    assert [r.id for r in claimed] == [early.id, other.id]
    assert all(r.state == IN_PROGRESS and r.run_id == "run-1" for r in claimed)
    assert [r.id for r in ledger.claim("run-2")] == [late.id]
    assert ledger.claim("run-3") == []
    assert [r.id for r in ledger.for_run("run-1")] == [early.id, other.id]


def test_illegal_transitions_change_nothing(ledger: Ledger) -> None:
    a = ledger.add("a").request
    b = ledger.add("b").request
    with pytest.raises(LedgerError, match="not in progress"):
        ledger.fulfil([a.id], run_id="run-1", model_version="2", outcome=OUTCOME)
    ledger.claim("run-1", request_ids=[a.id])
    before = snapshot(ledger)
    with pytest.raises(LedgerError, match="nothing was changed"):  # one bad id spoils the whole batch
        ledger.fulfil([a.id, b.id], run_id="run-1", model_version="2", outcome=OUTCOME)
    with pytest.raises(LedgerError, match="held by run run-1"):
        ledger.fail([a.id], run_id="run-2", reason="x")
    with pytest.raises(LedgerError, match="no erasure request"):
        ledger.release(["missing"], run_id="run-1", reason="x")
    with pytest.raises(LedgerError, match="only a failed request"):
        ledger.retry(a.id)
    assert snapshot(ledger) == before
    done = ledger.fulfil([a.id], run_id="run-1", model_version="2", outcome=OUTCOME)[0]
    assert done.state == FULFILLED and done.model_version == "2" and done.fulfilled_at == START
    with pytest.raises(LedgerError):
        ledger.release([a.id], run_id="run-1", reason="too late")
    assert [t.to_state for t in ledger.history(a.id)] == [PENDING, IN_PROGRESS, FULFILLED]


def test_an_expired_claim_returns_to_pending(ledger: Ledger, clock: Clock) -> None:
    ids = {ledger.add(f"s{i}").request.id for i in range(3)}
    assert {r.id for r in ledger.claim("dead-run", lease=timedelta(minutes=30))} == ids
    clock.advance(minutes=29)
    assert ledger.reclaim_expired() == [] and ledger.claim("run-2") == []
    clock.advance(minutes=2)
    assert {r.id for r in ledger.claim("run-2")} == ids  # the next claim reclaims them first
    with pytest.raises(LedgerError, match="held by run run-2"):  # the dead run cannot finish them now
        ledger.fulfil(sorted(ids), run_id="dead-run", model_version="9", outcome=OUTCOME)
    notes = [t.note for t in ledger.history(sorted(ids)[0])]
    assert any("lease of run dead-run expired" in (n or "") for n in notes)


def test_reclaim_expired_and_renew(ledger: Ledger, clock: Clock) -> None:
    request = ledger.add("s").request
    ledger.claim("run-1", lease=timedelta(minutes=10))
    clock.advance(minutes=8)
    assert ledger.renew("run-1", lease=timedelta(minutes=10)) == 1
    clock.advance(minutes=8)
    assert ledger.reclaim_expired() == []
    clock.advance(minutes=3)
    assert ledger.renew("run-1", lease=timedelta(minutes=10)) == 0  # an expired lease is not revived
    assert ledger.reclaim_expired() == [request.id]
    assert ledger.get(request.id).state == PENDING and ledger.get(request.id).run_id is None
    with pytest.raises(LedgerError, match="not in progress"):  # reclaimed: the late run cannot settle it
        ledger.fulfil([request.id], run_id="run-1", model_version="1", outcome=OUTCOME)


def test_a_run_past_its_lease_settles_what_no_run_reclaimed(ledger: Ledger, clock: Clock) -> None:
    request = ledger.add("s").request
    ledger.claim("slow-run", lease=timedelta(minutes=10))
    clock.advance(minutes=30)  # a long run whose steps could not renew the lease
    fulfilled = ledger.fulfil([request.id], run_id="slow-run", model_version="2", outcome=OUTCOME)
    assert fulfilled[0].state == FULFILLED and ledger.reclaim_expired() == []


def test_review_approval_fulfils_and_rejection_requeues(ledger: Ledger, clock: Clock) -> None:
    a, b = ledger.add("a").request, ledger.add("b").request
    ledger.claim("run-1")
    ledger.mark_needs_review([a.id, b.id], run_id="run-1", model_version="3", outcome=OUTCOME,
                             reason="retain accuracy dropped")
    assert {r.state for r in ledger.list_requests()} == {NEEDS_REVIEW}
    assert ledger.add("a").request.id == a.id  # still open: idempotent
    clock.advance(hours=1)
    approved = ledger.resolve_review("3", approved=True, by="dpo", reason="acceptable")
    assert {r.state for r in approved} == {FULFILLED}
    assert approved[0].fulfilled_at == clock.now and approved[0].outcome["review"]["by"] == "dpo"
    c = ledger.add("c").request
    ledger.claim("run-2")
    ledger.mark_needs_review([c.id], run_id="run-2", model_version="4", outcome=OUTCOME, reason="r")
    rejected = ledger.resolve_review("4", approved=False, by="dpo", reason="too much damage")
    assert rejected[0].state == PENDING and rejected[0].model_version is None
    assert [r.id for r in ledger.claim("run-3")] == [c.id]
    with pytest.raises(LedgerError, match="reviewer"):
        ledger.resolve_review("4", approved=True, by=" ", reason="x")


def test_failed_requests_keep_their_reason_and_can_be_retried(ledger: Ledger) -> None:
    request = ledger.add("s", ["digits/train/999999"]).request
    ledger.claim("run-1")
    failed = ledger.fail([request.id], run_id="run-1", reason="unknown sample ids")[0]
    assert failed.state == FAILED and failed.reason == "unknown sample ids" and not failed.is_open
    newer = ledger.add("s", ["x"])
    assert newer.created  # a failed request is closed: a new one opens
    assert ledger.retry(request.id).state == PENDING
    assert {r.id for r in ledger.list_requests(PENDING)} == {request.id, newer.request.id}


def test_requests_returning_to_pending_live_beside_a_newer_one(ledger: Ledger, clock: Clock) -> None:
    first = ledger.add("s", ["a"]).request
    ledger.claim("run-1", lease=timedelta(minutes=5))
    second = ledger.add("s", ["b"]).request  # the first is frozen: "b" opens a second request
    clock.advance(minutes=6)
    assert ledger.reclaim_expired() == [first.id]
    assert {r.id for r in ledger.list_requests(PENDING)} == {first.id, second.id}
    assert ledger.add("s", ["c"]).request.id == second.id  # merges go to the never-claimed one
    assert ledger.get(second.id).sample_ids == ("b", "c")
    assert {r.id for r in ledger.claim("run-2")} == {first.id, second.id}
    ledger.mark_needs_review([first.id, second.id], run_id="run-2", model_version="5", outcome=OUTCOME,
                             reason="r")
    third = ledger.add("s", ["d"]).request
    assert len(ledger.resolve_review("5", approved=False, by="dpo", reason="no")) == 2
    assert {r.id for r in ledger.list_requests(PENDING)} == {first.id, second.id, third.id}


def test_certificates_for_fulfilled_requests_only(ledger: Ledger, tmp_path: Path) -> None:
    done = ledger.add("subject-raw-id", ["digits/train/5"], received_at=START - timedelta(days=3)).request
    ledger.add("other-subject")
    ledger.claim("run-1", request_ids=[done.id])
    ledger.fulfil([done.id], run_id="run-1", model_version="7", outcome=OUTCOME)
    written = export_certificates(ledger, str(tmp_path / "certs"))
    assert written == [str(tmp_path / "certs" / f"{done.id}.json")]
    text = Path(written[0]).read_text()
    cert = json.loads(text)
    assert cert["request_id"] == done.id and cert["subject_hash"] == done.subject_hash
    assert cert["model_version"] == "7" and cert["within_deadline"] is True
    assert cert["received_at"] == (START - timedelta(days=3)).isoformat()
    assert cert["fulfilled_at"] == START.isoformat()
    assert cert["metrics"] == OUTCOME["metrics"] and cert["gate"] == OUTCOME["gate"]
    assert cert["algorithm"] == "lfssd" and cert["parameters"]["alpha"] == 10.0 and cert["lethe_version"]
    assert "subject-raw-id" not in text and "digits/train/5" not in text
    assert Path(written[0] + ".sha256").read_text().split()[0] == hashlib.sha256(text.encode()).hexdigest()
    with pytest.raises(LedgerError, match="only a fulfilled"):
        certificate(ledger.list_requests(PENDING)[0])
    # Named requests (a run's exit task): the same file, and a request not fulfilled is refused.
    assert export_certificates(ledger, str(tmp_path / "run"), request_ids=[done.id]) == [
        str(tmp_path / "run" / f"{done.id}.json")]
    assert (tmp_path / "run" / f"{done.id}.json").read_text() == text
    with pytest.raises(LedgerError, match="only a fulfilled"):
        export_certificates(ledger, str(tmp_path / "run"), request_ids=[ledger.list_requests(PENDING)[0].id])


def test_concurrent_claimers_never_share_a_request(ledger: Ledger) -> None:
    ids = {ledger.add(f"subject-{i}").request.id for i in range(60)}
    claims: dict[str, list[str]] = {}
    barrier = threading.Barrier(6)

    def claimer(run: str) -> None:
        barrier.wait()
        mine = claims.setdefault(run, [])
        while batch := Ledger(ledger.url, subject_key=KEY).claim(run, limit=4):
            mine.extend(r.id for r in batch)

    threads = [threading.Thread(target=claimer, args=(f"run-{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [i for batch in claims.values() for i in batch]
    assert sorted(claimed) == sorted(ids)  # every request claimed, none twice
    for request in ledger.list_requests():
        assert request.state == IN_PROGRESS and request.id in claims[request.run_id]


def test_an_unreachable_database_is_a_ledger_error() -> None:
    with pytest.raises(LedgerError, match="ledger database"):
        Ledger("postgresql://lethe@127.0.0.1:9/lethe", subject_key=KEY)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_add_list_show_export(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETHE_SUBJECT_KEY", "cli-key-of-at-least-32-bytes-for-hmac")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    code, out, _ = run_cli(capsys, "request", "add", "--ledger", url, "--subject", "raw-subject-7",
                           "--samples", "digits/train/3", "--received", "2020-01-01", "--defer-check")
    assert code == 0 and "recorded" in out and "raw-subject-7" not in out and "not checked" in out
    request_id = out.split()[0]
    code, out, _ = run_cli(capsys, "request", "add", "--ledger", url, "--subject", "raw-subject-7",
                           "--defer-check")
    assert code == 0 and out.split()[0] == request_id and "merged" not in out
    code, out, _ = run_cli(capsys, "request", "list", "--ledger", url)
    assert code == 0 and request_id in out and "OVERDUE" in out and "raw-subject-7" not in out
    code, out, _ = run_cli(capsys, "request", "show", request_id, "--ledger", url)
    assert code == 0 and "(received)" in out and "raw-subject-7" not in out
    code, out, _ = run_cli(capsys, "request", "list", "--ledger", url, "--state", "fulfilled", "--json")
    assert code == 0 and json.loads(out) == []
    code, _, err = run_cli(capsys, "request", "show", "no-such-id", "--ledger", url)
    assert code == 2 and err.startswith("lethe: error: no erasure request")
    code, _, err = run_cli(capsys, "request", "list", "--ledger", url, "--state", "done")
    assert code == 2 and "unknown state" in err
    ledger = Ledger(url, subject_key=b"cli-key-of-at-least-32-bytes-for-hmac")
    ledger.claim("run-1")
    ledger.fulfil([request_id], run_id="run-1", model_version="1", outcome=OUTCOME)
    code, out, _ = run_cli(capsys, "request", "export", "--ledger", url, "--out", str(tmp_path / "c"))
    assert code == 0 and out.startswith("1 certificate")
    assert json.loads((tmp_path / "c" / f"{request_id}.json").read_text())["model_version"] == "1"


# --- issue 17: checked at filing, cancel and amend, partly unknown ids -------------------------------------

def test_a_refused_check_records_nothing(ledger: Ledger) -> None:
    seen: list[tuple[list[str], list[str]]] = []

    def refuse(subject_hashes, sample_ids) -> None:
        seen.append((list(subject_hashes), list(sample_ids)))
        raise LedgerError("1 of 2 sample id(s) are not in digits/train")

    with pytest.raises(LedgerError, match="not in digits/train"):
        ledger.add("alice", ["digits/train/1", "digits/train/9999", "digits/train/1"], check=refuse)
    assert ledger.list_requests() == []
    # The check sees the subject's hash under every scheme (as a run matches it) and the ids deduplicated.
    assert seen == [(list(ledger.subject_hashes("alice").values()), ["digits/train/1", "digits/train/9999"])]
    assert ledger.add("alice", ["digits/train/1"], check=lambda *_: None).created


def test_cancel_and_amend_with_history(ledger: Ledger) -> None:
    first = ledger.add("alice", ["digits/train/1", "bad-id"]).request
    amended = ledger.amend(first.id, ["digits/train/1", "digits/train/2"])
    assert amended.state == PENDING and amended.sample_ids == ("digits/train/1", "digits/train/2")
    notes = [(t.from_state, t.to_state, t.note) for t in ledger.history(first.id)]
    assert notes[-1] == (PENDING, PENDING, "amended: 2 sample id(s), were 2")

    # A failed request is amended back to pending; a claimed one is frozen; refused checks change nothing.
    ledger.claim("run-1")
    with pytest.raises(LedgerError, match="only a pending or failed request can be amended"):
        ledger.amend(first.id, ["digits/train/3"])
    with pytest.raises(LedgerError, match="a run holds it"):
        ledger.cancel(first.id, reason="withdrawn")
    ledger.fail([first.id], run_id="run-1", reason="2 of 2 sample id(s) are not in digits/train")
    before = snapshot(ledger)
    with pytest.raises(LedgerError, match="refused"):
        ledger.amend(first.id, ["x"], check=lambda *_: (_ for _ in ()).throw(LedgerError("refused")))
    with pytest.raises(LedgerError, match="at least one sample id"):
        ledger.amend(first.id, ["  "])
    assert snapshot(ledger) == before
    again = ledger.amend(first.id, ["digits/train/3"])
    assert again.state == PENDING and again.reason is None and again.run_id is None

    cancelled = ledger.cancel(first.id, reason="the subject withdrew the request")
    assert cancelled.state == "cancelled" and not cancelled.is_open
    assert ledger.history(first.id)[-1].note == "cancelled: the subject withdrew the request"
    with pytest.raises(LedgerError, match="only a pending or failed request can be cancelled"):
        ledger.cancel(first.id, reason="twice")
    with pytest.raises(LedgerError, match="needs a reason"):
        ledger.cancel(ledger.add("bob").request.id, reason=" ")
    assert ledger.claim("run-2") and ledger.get(first.id).state == "cancelled"  # never claimed again
    # A cancelled request no longer takes the subject's new samples: a new request opens.
    assert ledger.add("alice", ["digits/train/5"]).created
    assert [r.id for r in ledger.list_requests("cancelled")] == [first.id]


def test_partly_unknown_ids_are_noted_and_counted_by_the_certificate(ledger: Ledger) -> None:
    request = ledger.add("alice", ["digits/train/1", "digits/train/2", "nonsense-id"]).request
    ledger.claim("run-1")
    ledger.note_resolution(request.id, run_id="run-1", forgotten=2, not_in_data=["nonsense-id"])
    ledger.note_resolution(request.id, run_id="run-1", forgotten=2, not_in_data=["nonsense-id"])  # retried
    notes = [t.note for t in ledger.history(request.id) if t.from_state == t.to_state == IN_PROGRESS]
    assert notes == ["resolved: 2 sample(s) to forget; 1 sample id(s) not in the data, nothing to forget "
                     "for them"]
    with pytest.raises(LedgerError, match="not in progress under run run-2"):
        ledger.note_resolution(request.id, run_id="run-2", forgotten=2, not_in_data=[])
    ledger.fulfil([request.id], run_id="run-1", model_version="2", outcome=OUTCOME)
    document = certificate(ledger.get(request.id))
    counts = (document["samples"], document["samples_forgotten"], document["sample_ids_not_in_data"])
    assert counts == (3, 2, 1)
    assert "nonsense-id" not in json.dumps(document)  # counts only: ids stay in the ledger
    assert [r.id for r in ledger.requests_of_run("run-1")] == [request.id]
    assert ledger.requests_of_run("run-2") == []


def test_cli_cancel_and_amend(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETHE_SUBJECT_KEY", "cli-key-of-at-least-32-bytes-for-hmac")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    code, out, _ = run_cli(capsys, "request", "add", "--ledger", url, "--subject", "raw-subject-8",
                           "--samples", "digits/train/4242", "--defer-check")
    request_id = out.split()[0]
    code, out, _ = run_cli(capsys, "request", "amend", request_id, "--samples", "digits/train/42",
                           "--ledger", url, "--defer-check")
    assert code == 0 and "1 sample id(s)" in out and "amended" in out
    code, _, err = run_cli(capsys, "request", "cancel", request_id, "--reason", "raw-subject-8 asked",
                           "--ledger", url)
    assert code == 2 and "names a subject id" in err and "raw-subject-8" not in err
    code, out, _ = run_cli(capsys, "request", "cancel", request_id, "--reason", "withdrawn", "--ledger", url)
    assert code == 0 and "cancelled" in out
    code, out, _ = run_cli(capsys, "request", "show", request_id, "--ledger", url)
    assert "amended: 1 sample id(s), were 1" in out and "cancelled: withdrawn" in out
