"""Shared by the pipeline and step tests: a throw-away lethe home with a registered champion."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

# Settings that would point a test at a real ledger, registry or bucket.
ENVIRONMENT = ("LETHE_LEDGER_URL", "LETHE_TRACKING_URI", "MLFLOW_TRACKING_URI", "LETHE_ARTIFACTS",
               "LETHE_SUBJECT_KEY", "LETHE_MODEL_NAME", "LETHE_DATA_DIR")


_template: list[Path] = []


def _empty_mlflow_db() -> Path:
    """An MLflow SQLite database with its schema in place, made once per test session: creating
    the schema takes seconds, copying the file milliseconds."""
    if not _template:
        from mlflow import MlflowClient

        path = Path(tempfile.mkdtemp(prefix="lethe-mlflow-template-")) / "mlflow.db"
        MlflowClient(tracking_uri=f"sqlite:///{path}", registry_uri=f"sqlite:///{path}").search_experiments()
        _template.append(path)
    return _template[0]


@contextmanager
def lethe_home(root: Path) -> Iterator[Path]:
    """LETHE_HOME=root with the embedded defaults (SQLite ledger and MLflow, local artifacts); the
    environment is inherited by kfp.local's task subprocesses."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_empty_mlflow_db(), root / "mlflow.db")
    with pytest.MonkeyPatch.context() as patch:
        for name in ENVIRONMENT:
            patch.delenv(name, raising=False)
        patch.setenv("LETHE_HOME", str(root))
        patch.setenv("LETHE_DEMO", "1")  # the demo's public subject key
        yield root


def register_champion(model_dir: Path) -> str:
    from lethe.registry import PromotionDecision, Registry

    info = Registry().register_version(model_dir, gate=PromotionDecision(True, ("base model",)),
                                       scenario="subject")
    assert info.is_champion
    return info.version


def file_requests(subjects: Sequence[str]) -> list[str]:
    from lethe.ledger import Ledger

    ledger = Ledger()
    return [ledger.add(subject).request.id for subject in subjects]


def states() -> dict[str, str]:
    from lethe.ledger import Ledger

    return {request.id: request.state for request in Ledger().list_requests()}
