"""lethe's task entry (components/task_entry.py): with a grants file, a task keeps only the lethe, S3 and
MLflow variables its compiled task is granted on a cluster; without one it only runs KFP's executor."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


def _grants(tmp_path: Path) -> Path:
    path = tmp_path / "grants.json"
    path.write_text(json.dumps({"governed_prefixes": ["LETHE_", "AWS_", "MLFLOW_"],
                                "kept": ["LETHE_HOME", "LETHE_TASK_ENV_GRANTS"],
                                "tasks": {"unlearn": ["AWS_ACCESS_KEY_ID", "LETHE_DATASET_URI"]}}))
    return path


def test_a_task_keeps_only_what_it_is_granted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from components.task_entry import confine

    granted = {"AWS_ACCESS_KEY_ID": "k", "LETHE_DATASET_URI": "s3://b/d", "LETHE_HOME": "/h", "PATH": "/bin"}
    refused = {"LETHE_LEDGER_URL": "postgresql://x", "LETHE_SUBJECT_KEY": "aa",
               "MLFLOW_TRACKING_PASSWORD": "p"}
    for name, value in {**granted, **refused}.items():
        monkeypatch.setenv(name, value)
    dropped = confine(str(_grants(tmp_path)), "unlearn")
    assert set(refused) <= set(dropped)
    assert all(os.environ.get(name) == value for name, value in granted.items())
    assert not set(refused) & set(os.environ)


def test_a_task_the_grants_do_not_name_is_stopped(tmp_path: Path) -> None:
    from components.task_entry import confine

    with pytest.raises(SystemExit, match="grants nothing to task evaluate"):
        confine(str(_grants(tmp_path)), "evaluate")


def test_every_component_runs_through_the_task_entry() -> None:
    from components.step import step_rows

    for row in step_rows().values():
        command = "\n".join(row.component.component_spec.implementation.container.command)
        assert "python3 -m components.task_entry -m kfp.dsl.executor_main" in command, row.name
