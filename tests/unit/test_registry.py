"""The MLflow registry (embedded SQLite): lineage, champion, review, loading, and privacy."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lethe import cli
from lethe.errors import IntegrityError, RegistryError
from lethe.ledger import FULFILLED, NEEDS_REVIEW, PENDING, Ledger
from lethe.unlearning import model_fingerprint

if TYPE_CHECKING:
    from lethe.registry import Registry

OUTCOME = {"metrics": {"forget_accuracy": 0.2}, "gate": {"decision": "review"}, "algorithm": "lfssd"}


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow database for the module: its first use migrates the schema (seconds)."""
    from lethe.registry import Registry

    home = tmp_path_factory.mktemp("lethe-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LETHE_ARTIFACTS", str(home / "artifacts"))
        uri = f"sqlite:///{home / 'mlflow.db'}"
        Registry(uri, "warm-up").champion_version()
        yield uri


@pytest.fixture
def registry(tracking: str, request: pytest.FixtureRequest) -> Registry:
    """A registered model of its own per test."""
    from lethe.registry import Registry

    return Registry(tracking, f"m-{hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:10]}")


@pytest.fixture
def model_dir(digits_convnet_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "model"
    shutil.copytree(digits_convnet_dir, out)
    return out


def register(registry: Registry, model_dir: Path, *, passed: bool, parent: str | None = None,
             requests: tuple[str, ...] = (), **kwargs) -> object:
    return registry.register_version(
        model_dir, gate={"passed": passed, "reasons": ["forget accuracy 0.4 > 0.2"] if not passed else []},
        scenario="subject" if parent else "base", parent_version=parent, request_ids=requests, **kwargs)


@pytest.mark.slow
def test_lineage_champion_and_review(registry: Registry, model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text(json.dumps({"candidate": {"test_accuracy": 0.93}}))
    base = register(registry, model_dir, passed=True, metrics={"test_accuracy": 0.95})
    assert base.version == "1" and base.is_champion and base.review is None and base.parent_version is None
    v2 = register(registry, model_dir, passed=True, parent="1", requests=("r1", "r2"), alpha=12.5, lam=1.0,
                  method="lfssd", importances_uri="s3://b/imp.safetensors", importances_sha256="ab" * 32,
                  evidence=[tmp_path / "metrics.json"], metrics={"candidate": {"test_accuracy": 0.93}})
    assert v2.is_champion and v2.parent_version == "1" and v2.request_ids == ("r1", "r2")
    assert v2.tags["lethe.alpha"] == "12.5" and v2.tags["lethe.lambda"] == "1.0"
    assert v2.tags["lethe.importances_uri"] == "s3://b/imp.safetensors" and v2.tags["lethe.gate"] == "pass"
    assert "Unlearned from version 1 with LFSSD (α=12.5, λ=1)" in v2.description
    assert "Honours 2 erasure request(s), 2 new" in v2.description and "Promoted" in v2.description
    run = registry.client.get_run(v2.run_id)
    assert run.data.metrics["candidate.test_accuracy"] == pytest.approx(0.93)
    assert run.data.params["alpha"] == "12.5"
    artifacts = {a.path for a in registry.client.list_artifacts(v2.run_id, "evidence")}
    assert artifacts == {"evidence/metrics.json", "evidence/lineage.json"}

    v3 = register(registry, model_dir, passed=False, parent="2", requests=("r3", "r1"))
    assert not v3.is_champion and v3.review == "pending" and registry.champion_version() == "2"
    assert v3.request_ids == ("r1", "r2", "r3") and v3.tags["lethe.new_request_ids"] == "r3"
    assert "Gate: FAIL — forget accuracy 0.4 > 0.2" in v3.description
    assert [v.version for v in registry.pending_reviews()] == ["3"]

    approved = registry.approve("3", by="Dana", reason="forgetting verified by hand")
    assert approved.is_champion and approved.review == "approved" and registry.champion_version() == "3"
    assert approved.tags["review.by"] == "Dana" and approved.tags["review.reason"].startswith("forgetting")
    assert approved.tags["review.at"] and "Approved by Dana" in approved.description
    with pytest.raises(RegistryError, match="not awaiting review"):
        registry.approve("3", by="Dana", reason="again")

    stale = register(registry, model_dir, passed=False, parent="2", requests=("r4",))  # built from v2
    with pytest.raises(RegistryError, match="does not honour 1 request"):
        registry.approve(stale.version, by="Dana", reason="looks fine")
    rejected = registry.reject(stale.version, by="Dana", reason="stale")
    assert rejected.review == "rejected" and registry.champion_version() == "3"
    passed_but_stale = register(registry, model_dir, passed=True, parent="2", requests=("r5",))
    assert not passed_but_stale.is_champion and passed_but_stale.review == "pending"
    assert "champion moved on" in passed_but_stale.description
    assert [v.version for v in registry.versions()] == ["1", "2", "3", "4", "5"]


def test_the_method_comes_from_the_unlearned_models_card(registry: Registry, model_dir: Path,
                                                         tmp_path: Path) -> None:
    from lethe.models import load_model, save_model
    from lethe.steps.register import method_of

    register(registry, model_dir, passed=True)
    model, card = load_model(model_dir)  # a card is changed by saving again (its sidecar must match)
    unlearning = {"method": "ssd", "alpha": 3.0, "lam": 1.0}
    save_model(model, model_dir, {**card.to_dict(), "unlearning": unlearning})
    v2 = register(registry, model_dir, passed=True, parent="1", requests=("r1",), alpha=3.0)
    assert v2.tags["lethe.method"] == "ssd" and "Unlearned from version 1 with SSD (α=3)" in v2.description
    assert registry.client.get_run(v2.run_id).data.params["method"] == "ssd"
    # The register step reads dampening.json's method, or its importances' (older records), or the card.
    assert method_of({"method": "ssd", "importances": {"method": "lfssd"}}, tmp_path) == "ssd"
    assert method_of({"importances": {"method": "ssd"}}, tmp_path) == "ssd"
    assert method_of({}, model_dir) == "ssd" and method_of({}, tmp_path) is None


def test_models_load_back_and_can_be_unlearned_again(registry: Registry, model_dir: Path,
                                                     tmp_path: Path) -> None:
    from lethe.registry import CHAMPION

    register(registry, model_dir, passed=True)
    expected = json.loads((model_dir / "model.json").read_text())["fingerprint"]
    name = registry.model_name
    for ref in (f"models:/{name}@{CHAMPION}", f"models:/{name}/1", "1", "champion"):
        model, card = registry.load_model(ref)
        assert model_fingerprint(model) == expected == card.fingerprint
        assert any(p.requires_grad for p in model.parameters())  # a real nn.Module, not a traced graph
    out = registry.download_model("@champion", tmp_path / "dl")
    assert (out / "model.safetensors").read_bytes() == (model_dir / "model.safetensors").read_bytes()
    with pytest.raises(RegistryError, match="no version 7"):
        registry.resolve("7")
    with pytest.raises(RegistryError, match="no version with alias"):
        registry.resolve("@nope")
    with pytest.raises(RegistryError, match="cannot read model reference"):
        registry.resolve("latest")


def test_a_tampered_registered_model_is_refused(registry: Registry, model_dir: Path, tmp_path: Path) -> None:
    info = register(registry, model_dir, passed=True)
    stored = Path(registry.client.get_run(info.run_id).info.artifact_uri.removeprefix("file://"))
    weights = stored / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="model.safetensors"):
        registry.download_model("1", tmp_path / "dl")


def test_nothing_personal_reaches_mlflow(registry: Registry, tracking: str, model_dir: Path,
                                         tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", subject_key=b"k")
    subjects = {"subject-alice-91": ["digits/train/11", "digits/train/12"],
                "subject-bob-92": ["digits/train/13"]}
    requests = [ledger.add(s, ids).request for s, ids in subjects.items()]
    sample_ids = [i for ids in subjects.values() for i in ids]
    forbidden = [*subjects, *(r.subject_hash for r in requests), *sample_ids]
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "metrics.json").write_text(json.dumps({"request_ids": [r.id for r in requests],
                                                       "forget_accuracy": 0.1, "num_samples": 3}))
    (evidence / "report.html").write_text("<html><body>forget accuracy 0.1</body></html>")
    (evidence / "plot.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    register(registry, model_dir, passed=True)
    info = register(registry, model_dir, passed=False, parent="1", requests=tuple(r.id for r in requests),
                    evidence=sorted(evidence.iterdir()), forbidden=forbidden, params={"num_samples": 3})
    registry.approve(info.version, by="Dana", reason="reviewed")
    assert set(info.request_ids) == {r.id for r in requests}

    # Everything MLflow holds: its database and every artifact file, byte for byte.
    blobs = [Path(tracking.removeprefix("sqlite:///")).read_bytes()]
    run = registry.client.get_run(info.run_id)
    store = Path(run.info.artifact_uri.removeprefix("file://")).parent.parent
    blobs += [p.read_bytes() for p in store.rglob("*") if p.is_file()]
    assert any(requests[0].id.encode() in blob for blob in blobs)  # the scan does see what was logged
    for value in forbidden:
        assert not any(value.encode() in blob for blob in blobs), f"{value} reached MLflow"


def test_the_privacy_guard_refuses_before_anything_is_sent(registry: Registry, model_dir: Path,
                                                           tmp_path: Path) -> None:
    register(registry, model_dir, passed=True)
    leaky = tmp_path / "metrics.json"
    leaky.write_text(json.dumps({"forgotten": ["digits/train/17"]}))
    runs_before = len(registry.client.search_runs([registry.client.get_experiment_by_name("lethe")
                                                   .experiment_id]))
    cases = [{"evidence": [leaky]}, {"params": {"subject": "subject-x"}, "forbidden": ["subject-x"]},
             {"requests": ("ok", "digits/test/3")}]
    for case in cases:
        with pytest.raises(RegistryError, match="only request ids may leave the ledger"):
            register(registry, model_dir, passed=True, parent="1", **case)
    runs_after = registry.client.search_runs([registry.client.get_experiment_by_name("lethe").experiment_id])
    assert len(runs_after) == runs_before and [v.version for v in registry.versions()] == ["1"]


@pytest.mark.slow
def test_review_cli_settles_the_ledger(registry: Registry, tracking: str, model_dir: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETHE_DEMO", "1")  # the review checks --by/--reason against the ledger's subjects
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(ledger_url, subject_key=b"k")
    ids = [ledger.add(f"s{i}").request.id for i in range(3)]
    register(registry, model_dir, passed=True)
    ledger.claim("run-1", request_ids=ids[:2])
    v2 = register(registry, model_dir, passed=False, parent="1", requests=tuple(ids[:2]))
    ledger.mark_needs_review(ids[:2], run_id="run-1", model_version=v2.version, outcome=OUTCOME,
                             reason="gate")
    ledger.claim("run-2", request_ids=ids[2:])
    v3 = register(registry, model_dir, passed=False, parent="1", requests=tuple(ids[2:]))
    ledger.mark_needs_review(ids[2:], run_id="run-2", model_version=v3.version, outcome=OUTCOME,
                             reason="gate")
    common = ["--tracking-uri", tracking, "--model-name", registry.model_name, "--ledger", ledger_url]

    assert cli.main(["review", "list", *common]) == 0
    out = capsys.readouterr().out
    assert "champion: version 1" in out and "forget accuracy 0.4 > 0.2" in out
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["2", "3"]

    assert cli.main(["review", "approve", "2", "--by", "Dana", "--reason", "ok", *common]) == 0
    assert "2 request(s) fulfilled" in capsys.readouterr().out
    assert registry.champion_version() == "2"
    assert [ledger.get(i).state for i in ids] == [FULFILLED, FULFILLED, NEEDS_REVIEW]
    assert ledger.get(ids[0]).outcome["review"]["by"] == "Dana"
    # The description stays true: the decision replaces "waits for a reviewer".
    description = registry.version("2").description
    assert "waits for a reviewer" not in description
    assert "Approved by Dana at" in description and ": ok (promoted to champion)." in description
    # A second approval changes nothing, and says so (its reason is not silently dropped).
    assert cli.main(["review", "approve", "2", "--by", "Eve", "--reason", "second look", *common]) == 0
    out = capsys.readouterr().out
    assert "already approved by Dana" in out and "nothing changed" in out and "not recorded" in out
    assert registry.version("2").tags["review.reason"] == "ok"

    assert cli.main(["review", "reject", "3", "--by", "Dana", "--reason", "too much damage", *common]) == 0
    assert "1 request(s) back to pending" in capsys.readouterr().out
    assert ledger.get(ids[2]).state == PENDING and registry.champion_version() == "2"
    # The same decision again only re-settles the ledger (idempotent); the opposite one is refused.
    assert cli.main(["review", "reject", "3", "--by", "Dana", "--reason", "again", *common]) == 0
    assert cli.main(["review", "approve", "3", "--by", "Dana", "--reason", "changed my mind", *common]) == 2
    assert "not awaiting review" in capsys.readouterr().err
    assert "Rejected by Dana at" in registry.version("3").description

    # Long gate reasons: the table shortens them and says where they are in full (--json).
    reasons = [f"retain accuracy of class {c} dropped by {c}.5 points, more than allowed" for c in range(4)]
    registry.register_version(model_dir, gate={"passed": False, "reasons": reasons}, scenario="subject",
                              parent_version="2")
    assert cli.main(["review", "list", *common]) == 0
    out = capsys.readouterr().out
    assert "..." in out and "--json" in out and "; ".join(reasons) not in out
    assert cli.main(["review", "list", "--json", "--all", *common]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [v["version"] for v in listed["versions"]] == ["1", "2", "3", "4"] and listed["champion"] == "2"
    assert listed["versions"][3]["gate_reasons"] == "; ".join(reasons)
    assert listed["versions"][1]["review_by"] == "Dana" and listed["versions"][0]["scenario"] == "base"


def test_an_unreachable_server_is_a_quick_registry_error() -> None:
    from lethe.registry import Registry

    start = time.monotonic()
    with pytest.raises(RegistryError, match="cannot reach the MLflow server"):
        Registry("http://127.0.0.1:9", "m")
    assert time.monotonic() - start < 10


def test_many_params_and_metrics_are_logged_in_batches(registry: Registry, model_dir: Path) -> None:
    params = {f"p{i:03d}": i for i in range(150)}
    metrics = {f"m{i:04d}": i / 7 for i in range(1200)}
    info = register(registry, model_dir, passed=True, params=params, metrics=metrics)
    data = registry.client.get_run(info.run_id).data
    logged = {k: v for k, v in data.params.items() if k.startswith("p")}
    assert logged == {k: str(v) for k, v in params.items()}
    assert {k: v for k, v in data.metrics.items() if k.startswith("m")} == pytest.approx(metrics)
    assert data.tags["mlflow.note.content"] == info.description


def test_cli_model_register_makes_the_first_champion(registry: Registry, model_dir: Path, capsys) -> None:
    args = ["model", "register", str(model_dir), "--tracking-uri", registry.tracking_uri,
            "--model-name", registry.model_name]
    assert cli.main([*args, "--json"]) == 0
    assert registry.champion_version() is None  # without --champion: registered, not promoted
    assert cli.main([*args, "--champion"]) == 0
    assert "alias champion" in capsys.readouterr().out
    assert registry.champion_version() == "2"
    assert registry.version("2").tags["lethe.scenario"] == "base"  # a base model, not a subject run
    assert cli.main(["model", "register", str(model_dir.parent / "nope"), "--tracking-uri",
                     registry.tracking_uri]) == 2


def test_a_retried_registration_returns_the_runs_version(registry: Registry, model_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """register-and-gate is retried on a cluster: the same run id never registers a second version,
    and a promotion that failed after the version was created is completed by the retry."""
    from mlflow.exceptions import MlflowException

    register(registry, model_dir, passed=True)
    first = register(registry, model_dir, passed=True, parent="1", requests=("r1",), run_key="run-a")
    again = register(registry, model_dir, passed=True, parent="1", requests=("r1",), run_key="run-a")
    assert first.version == again.version == "2" and again.is_champion
    assert again.tags["lethe.run_id"] == "run-a"

    set_alias = registry.client.set_registered_model_alias
    monkeypatch.setattr(registry.client, "set_registered_model_alias",
                        lambda *a, **k: (_ for _ in ()).throw(MlflowException("API restarting")))
    with pytest.raises(RegistryError):
        register(registry, model_dir, passed=True, parent="2", requests=("r2",), run_key="run-b")
    assert registry.champion_version() == "2"  # version 3 exists, its promotion did not happen
    monkeypatch.setattr(registry.client, "set_registered_model_alias", set_alias)
    retried = register(registry, model_dir, passed=True, parent="2", requests=("r2",), run_key="run-b")
    assert retried.version == "3" and retried.is_champion and registry.champion_version() == "3"
    assert [v.version for v in registry.versions()] == ["1", "2", "3"]
    with pytest.raises(RegistryError, match="invalid run id"):
        registry.version_of_run("x' or name='y")
