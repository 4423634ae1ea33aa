"""The reference-models and retrain pipelines through kfp.local (subprocess runner) on digits, once each.

The registered champion is the shared digits convnet; K=2 reference models of 2 epochs (each
ParallelFor task is a subprocess that imports torch), and a retraining of 2 epochs, keep both short.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipelines.helpers import lethe_home, register_champion

pytestmark = pytest.mark.slow


@pytest.fixture
def home(tmp_path: Path, digits_convnet_dir: Path, monkeypatch: pytest.MonkeyPatch):
    with lethe_home(tmp_path / "lethe") as root:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the tasks' torch: tiny models, a busy machine
        register_champion(digits_convnet_dir)
        yield root


def test_reference_models_train_in_parallel_tasks_and_are_stored_once(home, digits_convnet_dir):
    from lethe.audit import find_references
    from lethe.kfp.local import run_local

    run = run_local("reference-models", {"k": 2, "epochs": 2}, pipeline_root=home / "kfp",
                    log_path=home / "kfp.log")
    assert run.succeeded, f"{run.error}; see {home / 'kfp.log'}"
    assert run.tasks["plan-reference-models"] == run.tasks["merge-reference-models"] == "SUCCESS", run.tasks
    references = find_references(digits_convnet_dir)
    assert references is not None and references.k == 2 and references.epochs == 2
    assert (references.membership.sum(dim=0) == 1).all()  # each sample in one model, out of the other
    assert references.uri.startswith(str(home / "artifacts" / "audit" / "references"))
    stored = sorted(p.name for p in (Path(references.uri) / "models").iterdir())
    assert stored == ["ref-00", "ref-01"]  # one model per ParallelFor task, both merged


def test_the_retrain_pipeline_registers_a_gated_retrained_version(home, digits_train):
    import json

    from lethe.data import subject_map
    from lethe.kfp.local import run_local
    from lethe.models.baseline import excluded_digest
    from lethe.registry import Registry

    forget = subject_map(digits_train)["subject-00003"]
    run = run_local("retrain", {"forget_subjects": ["subject-00003"], "epochs": 2},
                    pipeline_root=home / "kfp",
                    log_path=home / "kfp.log")
    assert run.succeeded, f"{run.error}; see {home / 'kfp.log'}"
    assert list(run.tasks) == ["retrain", "evaluate", "register-retrained"]
    info = Registry().version("2")
    assert info.tags["lethe.remedy"] == "retrain" and info.parent_version == "1"
    assert info.tags["lethe.gate"] in ("pass", "fail")
    with_model = Registry().download_model("2", home / "v2")
    record = json.loads((with_model / "train.json").read_text())
    assert record["excluded"] == len(forget) and record["excluded_sha256"] == excluded_digest(forget)
    assert "subject-00003" not in (home / "kfp.log").read_text()  # id parameters are redacted from logs
