"""Commands that only read (`review list`, `request list`) refuse a store that is not there instead of
creating an empty one where they were run from."""

from __future__ import annotations

from pathlib import Path

import pytest

from lethe.cli import main

STORE_VARIABLES = ("LETHE_HOME", "LETHE_LEDGER_URL", "LETHE_TRACKING_URI", "MLFLOW_TRACKING_URI")


@pytest.mark.parametrize(("command", "words"), [
    (["review", "list"], "no model registry at"),
    (["request", "list"], "no erasure ledger at"),
    (["request", "settle", "run-1"], "no erasure ledger at"),
])
def test_a_read_only_command_run_elsewhere_refuses_and_creates_nothing(command, words, tmp_path: Path,
                                                                       monkeypatch, capsys):
    for name in STORE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "LETHE_HOME=.lethe" in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []  # no ./.lethe, no empty database


def test_an_existing_ledger_is_listed(tmp_path: Path, monkeypatch, capsys):
    from lethe.ledger import Ledger

    monkeypatch.setenv("LETHE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LETHE_LEDGER_URL", raising=False)
    Ledger()  # creates the store, as `request add` does
    assert main(["request", "list"]) == 0
    assert "0 request(s)" in capsys.readouterr().out


def test_request_settle_settles_from_the_recorded_outcome_and_refuses_a_path(tmp_path: Path, monkeypatch,
                                                                            capsys):
    from lethe.ledger import Ledger
    from lethe.steps.outcome import write_outcome

    monkeypatch.setenv("LETHE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LETHE_DEMO", "1")  # the demo's public subject key
    monkeypatch.delenv("LETHE_LEDGER_URL", raising=False)
    ledger = Ledger()
    held = ledger.add("subject-00001").request.id
    ledger.claim("run-7")
    assert main(["request", "settle", "../run-7"]) == 2  # a path, not a run id: refused, nothing settled
    assert "invalid run id" in capsys.readouterr().err and ledger.get(held).state == "in_progress"
    assert main(["request", "settle", "run-7"]) == 0  # no outcome yet: left to the exit task
    assert "the exit task releases 1" in capsys.readouterr().out and ledger.get(held).state == "in_progress"
    write_outcome("run-7", {"decision": "review", "version": "2", "model_name": "m", "request_ids": [held],
                            "gate": {"decision": "review", "reasons": ["damage"]}})
    assert main(["request", "settle", "run-7"]) == 0
    assert "1 awaiting review" in capsys.readouterr().out and ledger.get(held).state == "needs_review"
