"""The demo's requests (checked when filed) and the run summary that `lethe pipeline run --local` prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipelines.helpers import lethe_home, register_champion

pytestmark = pytest.mark.slow  # each test registers a champion in a fresh MLflow database


@pytest.fixture
def home(tmp_path: Path, digits_convnet_dir: Path):
    with lethe_home(tmp_path / "lethe") as root:
        register_champion(digits_convnet_dir)
        yield root


def test_the_demo_shows_the_refusal_at_filing(home: Path) -> None:
    from lethe.demo import DemoResult, file_requests, summary
    from lethe.ledger import Ledger

    filed, refused = file_requests("digits", 2)
    assert len(filed) == 2 and {r.state for r in Ledger().list_requests()} == {"pending"}
    assert len(refused) == 1 and "unknown to the subject map of digits/train" in refused[0]
    text = summary(DemoResult(home=home, dataset="digits", fallback_reason=None, model_dir=home,
                              trained=False, refused=refused))
    assert f"refused when filed: {refused[0]}" in text


def test_the_run_summary_names_what_failed_in_full(home: Path) -> None:
    from lethe.kfp.summary import summarize_run
    from lethe.ledger import Ledger

    ledger = Ledger()
    ok, bad = ledger.add("subject-00001").request.id, ledger.add("subject-00002").request.id
    untouched = ledger.add("subject-00003").request.id
    ledger.claim("run-7", request_ids=[ok, bad])
    reason = "3 of 3 sample id(s) are not in digits/train: nothing to forget " + "(a long reason) " * 8
    ledger.fail([bad], run_id="run-7", reason=reason)
    ledger.release([ok], run_id="run-7", reason="the run ended failed")
    done = summarize_run("run-7")
    assert [r["id"] for r in done.failed_requests] == [bad]
    assert {r["id"] for r in done.requests} == {ok, bad} and untouched not in {r["id"] for r in done.requests}
    text = done.text()
    assert "no model version registered" in text and "champion: version 1" in text
    assert reason.strip() in text  # in full: it says what to fix
    assert "2 request(s): 1 pending, 1 failed" in text


def test_the_summary_is_prepared_while_the_run_works_and_its_errors_wait_for_the_summary(
        home: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    from lethe.config import settings
    from lethe.errors import RegistryError
    from lethe.kfp.summary import prepare_summary, summarize_run
    from lethe.registry import client

    monkeypatch.setattr(client, "_clients", {})
    thread = prepare_summary()
    assert thread.daemon  # never keeps a finished command alive
    thread.join(timeout=120)
    assert not thread.is_alive() and settings().tracking in client._clients  # opened in the background

    # An unreachable registry: the background thread says nothing; the summary reports it, in one line.
    monkeypatch.setenv("LETHE_TRACKING_URI", "http://127.0.0.1:9")
    failed = prepare_summary()
    failed.join(timeout=120)
    assert not failed.is_alive() and "http://127.0.0.1:9" not in client._clients
    assert capfd.readouterr().err == ""
    with pytest.raises(RegistryError, match="cannot reach the MLflow server"):
        summarize_run("run-1")
