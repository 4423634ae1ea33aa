"""Retention end to end on an embedded MLflow registry: the copies of a request, their retirement past the
rollback window (weights no longer load or download through MLflow; no reference set, cache entry or run
folder that held the person's samples is left in the store), idempotence, resuming a killed run, and drift
(the champion alias moved by hand through MLflow's own client)."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import torch

from lethe import cli
from lethe.ledger import COMPLETE, FULFILLED, PENDING, Ledger

pytestmark = pytest.mark.slow  # an MLflow registry per test (its schema migration takes seconds)

KEY = "retention-test-key-of-at-least-32-bytes"
SAMPLES = ["digits/train/1", "digits/train/2"]


def _perturbed(source: Path, out: Path) -> Path:
    from lethe.models import load_model, save_model

    model, card = load_model(source)
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    fields = {k: v for k, v in card.to_dict().items() if k not in ("format", "fingerprint", "lethe_version")}
    save_model(model, out, fields)
    return out


class Store:
    """A home with a registry (version 1: the root; version 2 honours the request), the ledger, two
    reference sets (one trained on the request's samples), two cache folders and a run folder."""

    def __init__(self, home: Path, model_dir: Path, name: str, tracking: str) -> None:
        from lethe.audit.location import references_uri
        from lethe.audit.records import ReferenceManifest
        from lethe.registry import Registry
        from lethe.storage import join_uri, put_bytes

        self.home, self.artifacts = home, home / "artifacts"
        self.tracking = tracking
        self.ledger_url = f"sqlite:///{home / 'ledger.db'}"
        self.registry = Registry(self.tracking, name)
        passed = {"passed": True, "reasons": []}
        root = self.registry.register_version(model_dir, gate=passed, scenario="base")
        self.ledger = Ledger(self.ledger_url)
        self.request_id = self.ledger.add("ann@example.org", SAMPLES).request.id
        self.ledger.claim("run-1", request_ids=[self.request_id])
        child = _perturbed(model_dir, home / "child")
        version = self.registry.register_version(child, gate=passed, scenario="subject", parent_version="1",
                                                 request_ids=(self.request_id,))
        assert version.is_champion
        self.fingerprints = [root.metadata.model_fingerprint, version.metadata.model_fingerprint]
        self.run_folder = home / "kfp" / "lethe-scheduled-deletion-2026-01-01-00-00-00-000000"
        (self.run_folder / "collect-requests").mkdir(parents=True)
        (self.run_folder / "collect-requests" / "forget.json").write_text("{}")
        past = (datetime.now(UTC) - timedelta(hours=1)).timestamp()
        os.utime(self.run_folder, (past, past))
        self.ledger.fulfil([self.request_id], run_id="run-1", model_version="2", outcome={"model_name": name})
        self.held, self.other = (references_uri("a" * 64, str(self.artifacts)),
                                 references_uri("b" * 64, str(self.artifacts)))
        for uri, ids in ((self.held, [*SAMPLES, "digits/train/3"]), (self.other, ["digits/train/3"])):
            put_bytes(b"tensors", join_uri(uri, "references.safetensors"))
            ReferenceManifest(k=2, train_ids=ids, model_fingerprint="a" * 64, dataset_fingerprint="d",
                              recipe={}, num_classes=10, tensors_sha256="0" * 64).put(join_uri(uri,
                                                                                                "references.json"))
        for fingerprint in self.fingerprints:
            put_bytes(b"importances", join_uri(str(self.artifacts), "importances", fingerprint, "d-lfssd-b1"
                                               ".safetensors"))

    def files(self) -> list[str]:
        """Every file in the store, relative to the artifacts' root (a listing, as an auditor would)."""
        return sorted(str(p.relative_to(self.artifacts)) for p in self.artifacts.rglob("*") if p.is_file())

    def cli(self, *argv: str) -> int:
        return cli.main([*argv, "--ledger", self.ledger_url, "--tracking-uri", self.tracking,
                         "--model-name", self.registry.model_name])


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow database for the module: its first use migrates the schema (seconds)."""
    from lethe.registry import Registry

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    Registry(uri, "warm-up").champion_version()
    return uri


@pytest.fixture
def store(tmp_path: Path, digits_convnet_dir: Path, monkeypatch: pytest.MonkeyPatch,
          request: pytest.FixtureRequest, tracking: str) -> Store:
    monkeypatch.setenv("LETHE_HOME", str(tmp_path))
    monkeypatch.setenv("LETHE_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("LETHE_SUBJECT_KEY", KEY)
    model_dir = tmp_path / "root"
    shutil.copytree(digits_convnet_dir, model_dir)
    return Store(tmp_path, model_dir, f"retention-{request.node.name[5:40]}", tracking)


def _copies(store: Store, capsys: pytest.CaptureFixture) -> dict[str, dict[str, Any]]:
    capsys.readouterr()
    assert store.cli("request", "show", store.request_id, "--copies", "--json") == 0
    return {c["name"]: c for c in json.loads(capsys.readouterr().out)}


def test_copies_are_listed_then_retired_past_the_window(store: Store, capsys: pytest.CaptureFixture,
                                                        tmp_path: Path) -> None:
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    copies = _copies(store, capsys)
    importances = f"{store.artifacts}/importances/{store.fingerprints[0]}"
    assert set(copies) == {"version 1", store.held, importances, str(store.run_folder)}
    assert {c["state"] for c in copies.values()} == {"kept"}  # within the rollback window

    assert store.cli("retention", "apply") == 0
    assert "0 cop(ies) retired" in capsys.readouterr().out
    assert store.ledger.get(store.request_id).state == FULFILLED

    policy = tmp_path / "policy.yaml"
    policy.write_text("rollback_window_days: 30\ncontroller: Example GmbH\nrecipients: [a processor]\n")
    later = (store.ledger.get(store.request_id).deadline + timedelta(days=1)).isoformat()
    assert store.cli("retention", "apply", "--now", later, "--policy", str(policy)) == 0
    out = capsys.readouterr().out
    assert "4 cop(ies) retired, 1 request(s) complete" in out
    assert store.ledger.get(store.request_id).state == COMPLETE

    # The superseded version keeps its metadata, loses its weights: MLflow can neither load nor download it.
    retired = store.registry.version("1")
    assert retired.tags["lethe.retired"] and retired.metadata.model_fingerprint == store.fingerprints[0]
    with pytest.raises((MlflowException, OSError)):
        mlflow.pyfunc.load_model(f"models:/{store.registry.model_name}/1")
    with pytest.raises((MlflowException, OSError)):
        store.registry.client.download_artifacts(retired.run_id, "model/model.safetensors",
                                                 str(tmp_path / "x"))
    store.registry.load_model("2")  # the champion is untouched

    files = store.files()
    assert not [f for f in files if f.startswith(f"audit/references/{'a' * 64}")]
    assert not [f for f in files if f.startswith(f"importances/{store.fingerprints[0]}")]
    assert f"audit/references/{'b' * 64}/references.json" in files  # never held the person's samples
    assert f"importances/{store.fingerprints[1]}/d-lfssd-b1.safetensors" in files  # the champion's
    assert not store.run_folder.exists()

    certificate = json.loads((store.artifacts / "certificates" / f"{store.request_id}.json").read_text())
    assert certificate["state"] == COMPLETE and certificate["controller"] == "Example GmbH"
    assert {c["name"] for c in certificate["scope"]["retired"]} == set(copies)
    assert (store.artifacts / "certificates" / f"{store.request_id}.html").is_file()
    assert {c["state"] for c in _copies(store, capsys).values()} == {"retired"}

    assert store.cli("retention", "apply", "--now", later) == 0  # idempotent: nothing more to do
    assert "0 cop(ies) retired, 0 request(s) complete" in capsys.readouterr().out


def test_retention_killed_half_way_finishes_once(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from lethe.retention import apply as apply_module
    from lethe.retention.journal import read_journal
    from lethe.steps.retention import apply_retention_policy

    retire, calls = apply_module._retire, []

    def dies_on_the_second(copy, registry, now):  # the process is killed after retiring one copy
        calls.append(copy.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        retire(copy, registry, now)

    later = store.ledger.get(store.request_id).deadline + timedelta(days=1)
    args = dict(ledger_url=store.ledger_url, tracking_uri=store.tracking,
                model_name=store.registry.model_name, now=later)
    monkeypatch.setattr(apply_module, "_retire", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        apply_retention_policy(**args)
    assert store.ledger.get(store.request_id).state == FULFILLED
    monkeypatch.setattr(apply_module, "_retire", retire)
    report = apply_retention_policy(**args)
    assert len(report.retired) == 3 and report.completed == [store.request_id]
    journal = [c["name"] for c in read_journal(str(store.artifacts), store.request_id).copies]
    assert sorted(journal) == sorted(set(journal)) and len(journal) == 4  # each copy noted once
    assert apply_retention_policy(**args).retired == []
    assert store.ledger.get(store.request_id).state == COMPLETE


def test_a_champion_moved_by_hand_reopens_requests_and_blocks_promotion(
        store: Store, digits_convnet_dir: Path, capsys: pytest.CaptureFixture) -> None:
    from mlflow import MlflowClient

    MlflowClient(store.tracking, store.tracking).set_registered_model_alias(store.registry.model_name,
                                                                            "champion", "1")
    capsys.readouterr()
    assert store.cli("request", "list") == 0
    drift = [line for line in capsys.readouterr().out.splitlines() if line.startswith("drift:")]
    assert len(drift) == 1 and "version 1" in drift[0] and "does not honour 1" in drift[0]
    request = store.ledger.get(store.request_id)
    assert request.state == PENDING and "does not honour it" in request.reason
    assert store.registry.promotion_blocked()

    # The next run forgets the request again, but its version is not promoted until a reviewer confirms.
    again = store.registry.register_version(digits_convnet_dir, gate={"passed": True, "reasons": []},
                                            scenario="subject", parent_version="1",
                                            request_ids=(store.request_id,))
    assert not again.is_champion and again.review == "pending"
    assert store.registry.champion_version() == "1"
    assert store.cli("review", "approve", again.version, "--by", "dpo", "--reason", "looks fine") == 2
    assert "confirm-champion" in capsys.readouterr().err and store.registry.champion_version() == "1"
    assert store.cli("review", "confirm-champion", "2", "--by", "dpo", "--reason", "restored") == 2
    assert "not the champion" in capsys.readouterr().err and store.registry.promotion_blocked()
    assert store.cli("review", "confirm-champion", "1", "--by", "dpo", "--reason", "restored on purpose") == 0
    assert not store.registry.promotion_blocked()
    assert store.cli("review", "list") == 0
    assert "drift" not in capsys.readouterr().out  # nothing fulfilled is left unhonoured
