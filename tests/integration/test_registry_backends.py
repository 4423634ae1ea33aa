"""The registry against embedded MLflow and a real MLflow server whose artifacts live in S3."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import pytest

from lethe.ledger import Ledger
from lethe.unlearning import model_fingerprint


def model_name(request: pytest.FixtureRequest) -> str:
    return f"it-{hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:10]}"


def test_register_promote_review_and_load(tracking_uri: str, request: pytest.FixtureRequest,
                                          digits_convnet_dir: Path, tmp_path: Path) -> None:
    from lethe.registry import Registry

    registry = Registry(tracking_uri, model_name(request))
    base = registry.register_version(digits_convnet_dir, gate={"passed": True}, scenario="base")
    assert base.is_champion
    evidence = [tmp_path / "metrics.json", tmp_path / "report.html"]
    evidence[0].write_text(json.dumps({"candidate": {"forget_accuracy": 0.3}}))
    evidence[1].write_text("<html>report</html>")
    failed = registry.register_version(
        digits_convnet_dir, gate={"passed": False, "reasons": ["forget accuracy 0.3 > 0.1"]},
        scenario="subject", parent_version=base.version, request_ids=["req-1"], evidence=evidence,
        metrics={"forget_accuracy": 0.3}, alpha=9.0, lam=1.0, method="lfssd")
    assert failed.review == "pending" and registry.champion_version() == base.version
    approved = registry.approve(failed.version, by="Dana", reason="verified")
    assert approved.is_champion and approved.request_ids == ("req-1",)
    model, card = registry.load_model(f"models:/{registry.model_name}@champion")
    assert model_fingerprint(model) == card.fingerprint
    files = {a.path for a in registry.client.list_artifacts(failed.run_id, "evidence")}
    assert files == {"evidence/metrics.json", "evidence/report.html", "evidence/lineage.json"}
    # Each version is an MLflow 3 logged model of the experiment (its Models view), ready, with the
    # version's metrics and gate, and the version it became; it holds no second copy of the weights.
    experiment = registry.client.get_run(failed.run_id).info.experiment_id
    models = registry.client.search_logged_models([experiment])
    logged = {m.tags["lethe.registered_version"]: m for m in models if m.name == registry.model_name}
    assert set(logged) == {f"{registry.model_name}/{v}" for v in (base.version, failed.version)}
    model = logged[f"{registry.model_name}/{failed.version}"]
    assert model.status == "READY" and model.source_run_id == failed.run_id
    assert {m.key: m.value for m in model.metrics} == {"forget_accuracy": 0.3}
    assert model.tags["lethe.gate"] == "fail" and model.tags["lethe.scenario"] == "subject"
    assert registry.client.list_logged_model_artifacts(model.model_id) == []


def test_server_artifacts_are_in_s3_and_hold_nothing_personal(
        mlflow_server, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
        digits_convnet_dir: Path, tmp_path: Path) -> None:
    from lethe.registry import Registry

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3",
                 "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)  # the client needs only the tracking URI
    registry = Registry(mlflow_server.uri, model_name(request))
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", subject_key=b"k")
    subjects = {"subject-carol-7": ["digits/train/21"],
                "subject-dave-8": ["digits/train/22", "digits/train/23"]}
    requests = [ledger.add(s, ids).request for s, ids in subjects.items()]
    sample_ids = [i for ids in subjects.values() for i in ids]
    forbidden = [*subjects, *(r.subject_hash for r in requests), *sample_ids]
    evidence = tmp_path / "metrics.json"
    evidence.write_text(json.dumps({"requests": [r.id for r in requests], "forget_accuracy": 0.05}))
    registry.register_version(digits_convnet_dir, gate={"passed": True}, scenario="base")
    info = registry.register_version(digits_convnet_dir, gate={"passed": True}, scenario="subject",
                                     parent_version="1", request_ids=[r.id for r in requests],
                                     evidence=[evidence], forbidden=forbidden)
    assert info.is_champion

    s3 = mlflow_server.s3.client()
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="lethe-it", Prefix="mlflow/")
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert any(k.endswith(f"{info.run_id}/artifacts/model/model.safetensors") for k in keys)
    blobs = [s3.get_object(Bucket="lethe-it", Key=k)["Body"].read() for k in keys]
    blobs.append(mlflow_server.database.read_bytes())
    with tempfile.TemporaryDirectory() as tmp:  # and what a client downloads
        local = Path(registry.client.download_artifacts(info.run_id, "", tmp))
        blobs += [p.read_bytes() for p in local.rglob("*") if p.is_file()]
    assert any(requests[0].id.encode() in blob for blob in blobs)  # the scan sees what was logged
    for value in forbidden:
        assert not any(value.encode() in blob for blob in blobs), f"{value} reached MLflow"
