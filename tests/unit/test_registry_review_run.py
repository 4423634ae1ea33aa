"""A reviewer's decision reaches the version's MLflow run too (its note and review tags), so the run's
page in the MLflow UI does not keep saying that the version waits for a reviewer."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTE = "mlflow.note.content"


@pytest.mark.parametrize(("decision", "review"), [("approve", "approved"), ("reject", "rejected")])
def test_the_runs_note_and_review_tag_follow_the_decision(decision: str, review: str,
                                                         digits_convnet_dir: Path, tmp_path: Path,
                                                         monkeypatch) -> None:
    from lethe.registry import Registry

    monkeypatch.setenv("LETHE_ARTIFACTS", str(tmp_path / "artifacts"))
    registry = Registry(f"sqlite:///{tmp_path / 'mlflow.db'}", "reviewed")
    registry.register_version(digits_convnet_dir, gate={"passed": True, "reasons": []}, scenario="base")
    failed = registry.register_version(digits_convnet_dir, gate={"passed": False, "reasons": ["forget 0.4"]},
                                       scenario="subject", parent_version="1", request_ids=("r1",))
    run = registry.client.get_run(failed.run_id)
    assert run.data.tags["review"] == "pending" and run.data.tags[NOTE] == failed.description

    decided = getattr(registry, decision)(failed.version, by="Dana", reason="checked by hand")
    run = registry.client.get_run(failed.run_id)
    assert run.data.tags[NOTE] == decided.description != failed.description
    assert run.data.tags["review"] == decided.review == review
    assert run.data.tags["review.by"] == "Dana"
