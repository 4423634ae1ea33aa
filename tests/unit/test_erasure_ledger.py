"""Erasure beyond the champion, on the ledger alone: the complete state and drift reopening, the certificate's
scope, words, Ed25519 signature and page, and `lethe request check`'s deadlines."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lethe import cli
from lethe.errors import LedgerError
from lethe.ledger import COMPLETE, FULFILLED, PENDING, Ledger, certificate, write_certificate
from lethe.ledger.certificates import CertificateScope, ErasureCertificate

KEY = b"unit-test-key"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOT_MEMORISED_GATE = {"decision": "pass", "membership_test": "per-example",
                      "requests": {"all": {"outcome": "not_memorised", "summary": "never memorised"}}}
OUTCOME = {"model_name": "m", "metrics": {"forget_accuracy": 0.89, "test_accuracy": 0.93},
           "parent_metrics": {"forget_accuracy": 0.89, "test_accuracy": 0.931}, "gate": NOT_MEMORISED_GATE,
           "algorithm": "lfssd", "parameters": {"alpha": 10.0}}


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(tmp_path: Path, clock: Clock) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", subject_key=KEY, clock=clock)


def fulfilled(ledger: Ledger, subject: str = "ann@example.org", outcome: dict | None = None) -> str:
    request_id = ledger.add(subject, ["digits/train/1"]).request.id
    ledger.claim("run-1", request_ids=[request_id])
    ledger.fulfil([request_id], run_id="run-1", model_version="2", outcome=outcome or OUTCOME)
    return request_id


def test_fulfilled_becomes_complete_once_and_drift_reopens_it(ledger: Ledger) -> None:
    request_id = fulfilled(ledger)
    copies = [{"kind": "model version", "name": "version 1", "state": "retired", "retired_at": "t"}]
    done = ledger.complete(request_id, retired=copies)
    assert done.state == COMPLETE and done.outcome["retention"]["copies"] == copies
    assert ledger.complete(request_id, retired=[]).outcome["retention"]["copies"] == copies  # idempotent
    [reopened] = ledger.reopen([request_id], reason="the champion (version 1) does not honour it")
    assert reopened.state == PENDING and reopened.model_version is None and "version 1" in reopened.reason
    assert [t.to_state for t in ledger.history(request_id)][-2:] == [COMPLETE, PENDING]
    assert ledger.reopen([request_id], reason="again") == []  # pending: nothing to reopen
    with pytest.raises(LedgerError, match="only a fulfilled request can be complete"):
        ledger.complete(request_id, retired=[])


def test_a_pending_request_cannot_become_complete(ledger: Ledger) -> None:
    request_id = ledger.add("bob@example.org").request.id
    with pytest.raises(LedgerError, match="only a fulfilled request"):
        ledger.complete(request_id, retired=[])
    assert ledger.get(request_id).state == PENDING


def test_a_never_memorised_request_says_so_with_parent_and_candidate(ledger: Ledger) -> None:
    document = certificate(ledger.get(fulfilled(ledger)))
    assert document["parent_metrics"]["forget_accuracy"] == 0.89
    assert document["metrics"]["forget_accuracy"] == 0.89
    words = document["outcome_in_words"]
    assert "did not change" in words and "89.0% before and 89.0% after" in words
    assert "never memorised" in words


def test_a_certificate_that_moved_says_by_how_much(ledger: Ledger) -> None:
    outcome = {**OUTCOME, "metrics": {"forget_accuracy": 0.2}, "gate": {"decision": "pass"}}
    words = certificate(ledger.get(fulfilled(ledger, outcome=outcome)))["outcome_in_words"]
    assert "went from 89.0% to 20.0%" in words and "did not change" not in words


def test_the_scope_names_controller_recipients_and_what_lethe_does_not_manage(ledger: Ledger) -> None:
    scope = CertificateScope(controller="Example GmbH", recipients=("payments processor",),
                             not_managed=("the data lake",), rollback_window_days=10)
    request = ledger.get(fulfilled(ledger))
    document = certificate(request, scope)
    assert document["controller"] == "Example GmbH" and document["recipients"] == ["payments processor"]
    assert document["scope"]["not_managed"] == ["the data lake"]
    assert "version 2" in document["scope"]["erased"]
    assert document["scope"]["retire_by"] == (request.fulfilled_at + timedelta(days=10)).isoformat(
        timespec="seconds")
    ledger.complete(request.id, retired=[{"kind": "model version", "name": "version 1", "state": "retired",
                                          "retired_at": "2026-03-11T12:00:00+00:00"}])
    done = certificate(ledger.get(request.id), scope)
    assert done["state"] == COMPLETE and done["scope"]["retired"][0]["name"] == "version 1"


def _keys(tmp_path: Path) -> tuple[Path, Path]:
    assert cli.main(["request", "keygen", "--out", str(tmp_path / "keys")]) == 0
    return tmp_path / "keys" / "certificate-key.pem", tmp_path / "keys" / "certificate-key.pub.pem"


def test_a_signed_certificate_verifies_and_a_tampered_one_does_not(ledger: Ledger, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    private, public = _keys(tmp_path)
    scope = CertificateScope(controller="Example GmbH", signing_key=str(private))
    uri = write_certificate(ledger.get(fulfilled(ledger)), str(tmp_path / "certs"), scope)
    page = Path(uri).with_suffix(".html").read_text()
    assert "Example GmbH" in page and "did not change" in page and "Ed25519" in page
    assert ErasureCertificate.read(uri).signature["algorithm"] == "Ed25519"
    capsys.readouterr()
    assert cli.main(["request", "verify", uri, "--public-key", str(public)]) == 0
    assert "valid" in capsys.readouterr().out

    fields = json.loads(Path(uri).read_text())
    fields["model_version"] = "1"  # an edit after signing (a new sha256 sidecar would not help)
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(fields, indent=2))
    assert cli.main(["request", "verify", str(tampered), "--public-key", str(public)]) == 2
    assert "altered after signing" in capsys.readouterr().err
    other = tmp_path / "other"
    assert cli.main(["request", "keygen", "--out", str(other)]) == 0
    assert cli.main(["request", "verify", uri, "--public-key", str(other / "certificate-key.pub.pem")]) == 2
    assert "another key" in capsys.readouterr().err
    unsigned = write_certificate(ledger.get(fulfilled(ledger, "bob@example.org")), str(tmp_path / "plain"))
    assert cli.main(["request", "verify", unsigned, "--public-key", str(public)]) == 2
    assert "no Ed25519 signature" in capsys.readouterr().err


def test_keygen_never_overwrites_a_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    private, _ = _keys(tmp_path)
    before = private.read_bytes()
    assert cli.main(["request", "keygen", "--out", str(tmp_path / "keys")]) == 2
    assert private.read_bytes() == before and "already holds" in capsys.readouterr().err


def _check(tmp_path: Path, url: str, *extra: str) -> tuple[int, dict, str]:
    out, metrics = tmp_path / "check.json", tmp_path / "lethe.prom"
    code = cli.main(["request", "check", "--ledger", url, "--out", str(out), "--metrics", str(metrics),
                     *extra])
    return code, json.loads(out.read_text()), metrics.read_text()


@pytest.mark.parametrize("case", ["overdue", "stuck", "near-deadline"])
def test_request_check_alerts(case: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    now = datetime.now(UTC)
    if case == "overdue":
        Ledger(url, subject_key=KEY).add("ann@example.org", received_at=now - timedelta(days=40))
    elif case == "stuck":
        ledger = Ledger(url, subject_key=KEY)
        ledger.add("ann@example.org")
        ledger.claim("run-1", lease=timedelta(seconds=1))
        time.sleep(1.1)  # the lease ran out
    else:
        ledger = Ledger(url, subject_key=KEY)
        request_id = ledger.add("ann@example.org", received_at=now - timedelta(days=27)).request.id
        ledger.claim("run-1", request_ids=[request_id])
        ledger.mark_needs_review([request_id], run_id="run-1", model_version="2", outcome=OUTCOME,
                                 reason="the gate failed")
    code, summary, metrics = _check(tmp_path, url, "--review-days", "7")
    key = {"overdue": "overdue", "stuck": "stuck", "near-deadline": "review_due"}[case]
    assert code == 1 and not summary["healthy"] and len(summary[key]) == 1
    assert f"lethe_erasure_requests_{key} 1" in metrics


def test_request_check_passes_a_healthy_ledger(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url, subject_key=KEY)
    ledger.add("ann@example.org")
    fulfilled(ledger, "bob@example.org")
    code, summary, metrics = _check(tmp_path, url)
    assert code == 0 and summary["healthy"] and summary["by_state"] == {PENDING: 1, FULFILLED: 1}
    assert 'lethe_erasure_requests{state="pending"} 1' in metrics
    assert "lethe_erasure_requests_overdue 0" in metrics
    assert capsys.readouterr().out.startswith("ok:")


@pytest.mark.parametrize(("policy", "message"), [
    ("rollback_window_days: -1\n", "rollback_window_days"),
    ("surprise: 1\n", "surprise"),
    ("[1, 2]\n", "not a mapping"),
    (": : :\n", "cannot read the retention policy"),
])
def test_a_bad_retention_policy_is_one_line_and_changes_nothing(policy: str, message: str, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    request_id = fulfilled(Ledger(url, subject_key=KEY))
    before = Ledger(url, subject_key=KEY).history(request_id)
    path = tmp_path / "policy.yaml"
    path.write_text(policy)
    assert cli.main(["retention", "apply", "--policy", str(path), "--ledger", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lethe: error:") and message in err and len(err.strip().splitlines()) == 1
    assert Ledger(url, subject_key=KEY).history(request_id) == before


def test_verify_refuses_what_it_cannot_read_in_one_line(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    _, public = _keys(tmp_path)
    broken = tmp_path / "not-json.json"
    broken.write_text("{")
    cases = ((tmp_path / "missing.json", public, "cannot read the certificate"),
             (broken, public, "not JSON"),
             (broken, broken, "not a PEM public key"))
    for certificate_path, key, message in cases:
        assert cli.main(["request", "verify", str(certificate_path), "--public-key", str(key)]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
