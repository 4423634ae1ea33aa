"""Integrity (issue 16, finding 4) and commands that change several systems (finding 5).

A model directory is refused wherever it is loaded or registered when its files differ from their
sha256 sidecars (or have none), its weights hold NaN or do not match its card's fingerprint; local
importances are verified like s3:// ones. A command that changes MLflow and the ledger, or writes
several certificates, validates first and then completes, or says what the retry does.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from lethe.errors import IntegrityError, ModelError
from tests.pipelines.helpers import lethe_home, register_champion
from tests.robustness.conftest import run_in_process

KEY = "integrity-test-key-of-at-least-32-bytes"


@pytest.fixture
def home(tmp_path: Path):
    with lethe_home(tmp_path / "lethe") as root:
        yield root


def _runs_and_versions() -> tuple[int, int]:
    from lethe.registry import Registry

    registry = Registry()
    experiment = registry.client.get_experiment_by_name("lethe")
    runs = len(registry.client.search_runs([experiment.experiment_id])) if experiment else 0
    return runs, len(registry.client.search_model_versions())


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


# --- finding 4: integrity ---------------------------------------------------------------------------

def test_model_directories_carry_sidecars_in_sha256sum_format(digits_convnet_dir: Path) -> None:
    from lethe.storage import sha256_file

    for name in ("model.safetensors", "model.json"):
        line = (digits_convnet_dir / f"{name}.sha256").read_text()
        assert line == f"{sha256_file(digits_convnet_dir / name)}  {name}\n"


def test_an_edited_card_or_a_missing_sidecar_is_refused(digits_convnet_dir: Path, tmp_path: Path) -> None:
    from lethe.models import load_model, read_card

    edited = _copy(digits_convnet_dir, tmp_path / "edited")
    card = json.loads((edited / "model.json").read_text())
    card["normalization"] = {"mean": [0.0], "std": [100.0]}  # every later prediction would be wrong
    (edited / "model.json").write_text(json.dumps(card))
    for load in (load_model, read_card):
        with pytest.raises(ModelError, match="model.json differs from its recorded sha256"):
            load(edited)
    unsealed = _copy(digits_convnet_dir, tmp_path / "unsealed")
    (unsealed / "model.safetensors.sha256").unlink()
    with pytest.raises(ModelError, match="model.safetensors has no recorded sha256"):
        load_model(unsealed)


def test_register_refuses_nan_weights_and_a_foreign_fingerprint(home: Path, digits_convnet_dir: Path,
                                                               tmp_path: Path) -> None:
    from lethe.models import load_model, save_model, write_sidecars

    model, card = load_model(digits_convnet_dir)
    fields = {"dataset": card.dataset, "normalization": card.normalization}
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    save_model(model, tmp_path / "other", fields)
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    nan_dir = tmp_path / "nan"
    save_model(model, nan_dir, fields)
    swapped = _copy(digits_convnet_dir, tmp_path / "swapped")
    shutil.copy(tmp_path / "other" / "model.safetensors", swapped / "model.safetensors")
    write_sidecars(swapped)  # files and sidecars agree: the fingerprint check must catch it
    env = {"LETHE_HOME": str(home)}
    for directory, fragment in ((nan_dir, "NaN or infinite values"), (swapped, "fingerprint")):
        result = run_in_process(["model", "register", str(directory), "--champion"], env)
        assert result.code == 2 and fragment in result.err and result.err.count("\n") == 1, result.err
    assert _runs_and_versions() == (0, 0)  # refused before MLflow heard of it


def test_local_importances_are_verified_like_s3_ones(digits_convnet_dir: Path, tmp_path: Path) -> None:
    from lethe.storage import seal_local_file
    from lethe.unlearning import Importances

    path = tmp_path / "full.safetensors"
    Importances({"w": torch.ones(3)}, method="lfssd", batch_size=1, num_batches=3, num_samples=3,
                model_fingerprint="f" * 64).save(path)
    seal_local_file(path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    argv = ["unlearn", "--model", str(digits_convnet_dir), "--dataset", "digits", "--forget-class", "3",
            "--alpha", "10", "--no-progress", "--importances", str(path), "--out", str(tmp_path / "out")]
    result = run_in_process(argv, {"LETHE_SUBJECT_KEY": KEY})
    assert result.code == 2 and "is corrupt or was altered" in result.err, result.err
    (tmp_path / "full.safetensors.sha256").unlink()  # a file of unknown origin
    from lethe.steps.full_importances import verified_importances

    with pytest.raises(IntegrityError, match="no recorded sha256.*sha256sum FILE > FILE.sha256"):
        verified_importances(path)
    assert not (tmp_path / "out").exists()


def test_a_version_registered_before_sidecars_still_loads(home: Path, digits_convnet_dir: Path,
                                                         tmp_path: Path) -> None:
    """Versions registered by an older lethe have no sidecars; their manifest tag vouches for them."""
    from lethe.registry import Registry

    legacy = _copy(digits_convnet_dir, tmp_path / "legacy")
    register_champion(legacy)
    registry = Registry()
    stored = Path(registry.client.get_run(registry.version("1").run_id).info.artifact_uri
                  .removeprefix("file://")) / "model"
    manifest = {name: value for name, value in json.loads(registry.version("1").tags["lethe.model_manifest"])
                .items() if not name.endswith(".sha256")}
    for sidecar in stored.glob("*.sha256"):
        sidecar.unlink()
    registry.client.set_model_version_tag(registry.model_name, "1", "lethe.model_manifest",
                                          json.dumps(manifest, sort_keys=True))
    model, card = Registry().load_model("1")
    assert card.fingerprint == json.loads((digits_convnet_dir / "model.json").read_text())["fingerprint"]


# --- finding 5: errors that change state ------------------------------------------------------------

def test_an_invalid_model_name_is_refused_before_any_run(home: Path, digits_convnet_dir: Path) -> None:
    result = run_in_process(["model", "register", str(digits_convnet_dir), "--model-name", "../../x"],
                            {"LETHE_HOME": str(home)})
    assert result.code == 2 and "invalid model name" in result.err, result.err
    assert _runs_and_versions() == (0, 0)


def _pending_review(home: Path, model_dir: Path) -> tuple[str, str]:
    """Version 1 champion, version 2 failed the gate; one request awaits its review."""
    from lethe.ledger import Ledger
    from lethe.registry import PromotionDecision, Registry

    register_champion(model_dir)
    ledger = Ledger()
    request_id = ledger.add("subject-00003").request.id
    ledger.claim("run-1", request_ids=[request_id])
    version = Registry().register_version(model_dir, gate=PromotionDecision(False, ("forget accuracy",)),
                                          scenario="subject", parent_version="1", request_ids=[request_id])
    ledger.mark_needs_review([request_id], run_id="run-1", model_version=version.version,
                             outcome={"gate": {"decision": "review"}}, reason="gate failed")
    return request_id, version.version


def test_review_with_an_unreachable_ledger_changes_nothing(home: Path, digits_convnet_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from lethe.ledger import Ledger
    from lethe.registry import Registry

    request_id, version = _pending_review(home, digits_convnet_dir)
    approve = ["review", "approve", version, "--by", "Dana", "--reason", "acceptable damage"]
    env = {"LETHE_HOME": str(home)}
    result = run_in_process([*approve, "--ledger", "postgresql://lethe@127.0.0.1:9/lethe"], env)
    assert result.code == 2 and "ledger" in result.err, result.err
    assert Registry().champion_version() == "1" and Registry().version(version).review == "pending"
    assert Ledger().get(request_id).state == "needs_review"

    # The ledger fails after MLflow recorded the decision: the error says so, the same command finishes.
    from lethe.errors import LedgerError

    def broken(*_args: object, **_kwargs: object) -> None:
        raise LedgerError("ledger database sqlite:///x failed: disk I/O error")

    monkeypatch.setattr(Ledger, "resolve_review", broken)
    result = run_in_process(approve, env)
    assert result.code == 2 and "run the same command again" in result.err, result.err
    assert Registry().champion_version() == version and Ledger().get(request_id).state == "needs_review"
    monkeypatch.undo()
    assert run_in_process(approve, env).code == 0
    assert Ledger().get(request_id).state == "fulfilled"


def test_a_failed_export_leaves_no_certificate_behind(tmp_path: Path) -> None:
    from lethe.ledger import Ledger

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url, subject_key=KEY.encode())
    ids = [ledger.add(f"subject-{i}").request.id for i in range(3)]
    ledger.claim("run-1", request_ids=ids)
    ledger.fulfil(ids, run_id="run-1", model_version="2", outcome={"metrics": {}})
    out = tmp_path / "certificates"
    last = ledger.list_requests("fulfilled")[-1].id
    (out / f"{last}.json").mkdir(parents=True)  # the third write fails
    result = run_in_process(["request", "export", "--ledger", url, "--out", str(out)], {})
    assert result.code == 2 and "stopped after 2 of 3" in result.err and "re-run" in result.err, result.err
    assert sorted(p.name for p in out.iterdir()) == [f"{last}.json"]  # only the obstacle is left
    (out / f"{last}.json").rmdir()
    assert run_in_process(["request", "export", "--ledger", url, "--out", str(out)], {}).code == 0
    assert len(list(out.glob("*.json"))) == 3 and len(list(out.glob("*.json.sha256"))) == 3


def test_changed_batchnorm_statistics_are_refused(digits_convnet_dir: Path, tmp_path: Path) -> None:
    """The card records the buffers' sha256 beside the parameters' fingerprint: a changed running_mean,
    even with its sha256 sidecar rewritten, is refused; the parameters' fingerprint (which keys the
    importances cache and the references) does not change."""
    from safetensors.torch import load_file, save_file

    from lethe.models import load_model, save_model
    from lethe.models.checkpoint import write_sidecars

    model, card = load_model(digits_convnet_dir)
    out = tmp_path / "model"
    saved = save_model(model, out)
    assert saved.fingerprint == card.fingerprint  # parameters only, as before: stored fingerprints hold
    load_model(out)
    state = load_file(str(out / "model.safetensors"))
    name = next(key for key in state if key.endswith("running_mean"))
    state[name] = state[name] + 0.5
    save_file(state, str(out / "model.safetensors"), metadata={"fingerprint": card.fingerprint,
                                                                "arch": card.arch})
    write_sidecars(out)
    with pytest.raises(ModelError, match="buffers"):
        load_model(out)
    load_model(digits_convnet_dir)  # a card from before buffers were recorded still loads


def test_keyed_sidecars_refuse_a_regenerated_checksum(digits_convnet_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """With LETHE_SIDECAR_KEY set, sidecars carry an HMAC of their line: an edited card or artifact whose
    plain sha256 sidecar was regenerated (as anyone can) is refused; with the key, what lethe wrote reads."""
    from lethe.models import load_model, read_card, save_model
    from lethe.models.checkpoint import write_sidecars
    from lethe.storage import get_bytes, put_bytes, sha256_file

    model, _card = load_model(digits_convnet_dir)
    monkeypatch.setenv("LETHE_SIDECAR_KEY", "a-secret-sidecar-key")
    with pytest.raises(IntegrityError, match="no keyed seal"):  # under a key, unkeyed files are refused
        load_model(digits_convnet_dir)
    out = tmp_path / "model"
    save_model(model, out)
    assert "hmac-sha256 " in (out / "model.json.sha256").read_text()
    load_model(out)
    card = json.loads((out / "model.json").read_text())
    card["num_classes"] = 10
    (out / "model.json").write_text(json.dumps(card))
    (out / "model.json.sha256").write_text(f"{sha256_file(out / 'model.json')}  model.json\n")  # regenerated
    with pytest.raises(IntegrityError, match="no keyed seal"):
        read_card(out)
    monkeypatch.setenv("LETHE_SIDECAR_KEY", "another-key")
    write_sidecars(out)  # sealed with the wrong key
    monkeypatch.setenv("LETHE_SIDECAR_KEY", "a-secret-sidecar-key")
    with pytest.raises(IntegrityError, match="wrong keyed seal"):
        read_card(out)

    uri = str(tmp_path / "blob.bin")
    put_bytes(b"importances", uri)
    assert get_bytes(uri) == b"importances"
    Path(uri).write_bytes(b"tampered")
    Path(uri + ".sha256").write_text(f"{sha256_file(uri)}  blob.bin\n")
    with pytest.raises(IntegrityError, match="keyed seal"):
        get_bytes(uri)
    monkeypatch.delenv("LETHE_SIDECAR_KEY")
    assert get_bytes(uri) == b"tampered"  # without a key, sidecars are plain checksums, as before
