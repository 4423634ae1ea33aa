"""Reference models per model version (lethe.audit) and the retrain remedy, on digits.

One set of K=4 reference models (4 epochs each, ~2 s on one thread) is trained for the module and
shared; the other tests plan (no training) or reuse it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from lethe.audit import (
    ReferenceSet,
    find_references,
    membership_design,
    plan_references,
    prepare_references,
    retire_references,
)
from lethe.errors import AuditError
from lethe.models import load_model, save_model
from lethe.models.baseline import excluded_digest
from tests.pipelines.helpers import lethe_home, register_champion

K, EPOCHS = 4, 4


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("audit-artifacts"))


@pytest.fixture(scope="module")
def references(digits_convnet_dir: Path, artifacts: str) -> ReferenceSet:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return prepare_references(digits_convnet_dir, k=K, epochs=EPOCHS, root_uri=artifacts, device="cpu",
                                  progress=False)
    finally:
        torch.set_num_threads(threads)


def _descendant(model_dir: Path, out: Path) -> Path:
    """A model unlearned from `model_dir`, as the unlearn step writes its card (weights changed)."""
    model, card = load_model(model_dir)
    with torch.no_grad():
        next(model.parameters()).mul_(0.5)
    save_model(model, out, {"dataset": card.dataset, "normalization": card.normalization,
                            "classes": card.classes, "image_size": card.image_size,
                            "parent_fingerprint": card.fingerprint,
                            "root_fingerprint": card.extra.get("root_fingerprint") or card.fingerprint})
    return out


def test_the_design_puts_every_sample_out_of_half_the_models():
    membership = membership_design(8, 1000, seed=3)
    assert membership.dtype == torch.bool and membership.shape == (8, 1000)
    assert (membership.sum(dim=0) == 4).all()  # each sample in exactly K/2 models, out of the others
    assert ((membership.sum(dim=1) > 400) & (membership.sum(dim=1) < 600)).all()  # each model: about half
    assert not torch.equal(membership[0], membership[1])
    odd = membership_design(5, 1000, seed=3).sum(dim=0)
    assert set(odd.tolist()) == {2, 3}
    never = torch.zeros(1000, dtype=torch.bool)
    never[:10] = True
    assert not membership_design(8, 1000, seed=3, never_in=never)[:, :10].any()


def test_references_on_digits(references, digits_train, digits_test, digits_convnet_dir):
    assert references.k == K and references.train_ids == list(digits_train.ids)
    assert references.test_ids == list(digits_test.ids)
    assert (references.membership.sum(dim=0) == K // 2).all()
    assert references.train_logits.shape == (K, len(digits_train), 10)
    assert references.test_logits.shape == (K, len(digits_test), 10)
    assert references.train_logits.dtype == torch.float32
    from lethe.models import read_card

    assert references.model_fingerprint == read_card(digits_convnet_dir).fingerprint
    assert references.dataset_fingerprint == digits_train.fingerprint()
    assert references.recipe["model"] == "convnet" and references.epochs == EPOCHS
    # Every model learnt something (held-out accuracy) ...
    test_accuracy = (references.test_logits.argmax(-1) == digits_test.labels).float().mean(dim=1)
    assert (test_accuracy > 0.8).all(), test_accuracy
    # ... and is more confident on its own half than on the other: mislabelled halves would break this.
    confidence = references.train_logits.softmax(-1).gather(
        2, digits_train.labels.view(1, -1, 1).expand(K, -1, 1)).squeeze(-1)
    for k in range(K):
        inside = confidence[k][references.membership[k]].mean()
        outside = confidence[k][~references.membership[k]].mean()
        assert inside > outside + 0.01, (k, float(inside), float(outside))
    assert torch.equal(references.out_mask([0, 5, 7]), ~references.membership[:, [0, 5, 7]])


def test_a_second_call_returns_the_stored_set_without_training(references, digits_convnet_dir, artifacts,
                                                              monkeypatch):
    import lethe.audit.references as module

    monkeypatch.setattr(module, "train_reference", lambda *a, **k: pytest.fail("trained again"))
    again = prepare_references(digits_convnet_dir, k=K, epochs=EPOCHS, root_uri=artifacts, progress=False)
    assert again.uri == references.uri and torch.equal(again.train_logits, references.train_logits)
    assert torch.equal(again.membership, references.membership)
    with pytest.raises(AuditError, match="K=4"):
        prepare_references(digits_convnet_dir, k=8, root_uri=artifacts, progress=False)


def test_a_descendant_finds_its_roots_references_and_recipe(references, digits_convnet_dir, artifacts,
                                                            tmp_path):
    child = _descendant(digits_convnet_dir, tmp_path / "child")
    grandchild = _descendant(child, tmp_path / "grandchild")
    for model_dir in (child, grandchild):
        found = find_references(model_dir, root_uri=artifacts)
        assert found is not None and found.uri == references.uri
    # Its recipe is found with them: a descendant plans without a train.json of its own.
    assert plan_references(grandchild, k=K, root_uri=artifacts).recipe == references.recipe
    assert find_references(digits_convnet_dir, root_uri=str(tmp_path / "elsewhere")) is None


def test_the_stored_files_are_verified(references, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(references.uri, copy)
    assert torch.equal(ReferenceSet.load(str(copy)).test_logits, references.test_logits)
    tensors = copy / "references.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:-8] + b"\0" * 8)
    from lethe.errors import IntegrityError

    with pytest.raises(IntegrityError):
        ReferenceSet.load(str(copy))


def test_no_recipe_is_refused_in_one_line_naming_how_to_supply_one(digits_convnet_dir, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(digits_convnet_dir, bare)
    (bare / "train.json").unlink()
    with pytest.raises(AuditError) as refused:
        prepare_references(bare, k=2, root_uri=str(tmp_path / "artifacts"), progress=False)
    message = str(refused.value)
    assert "\n" not in message and "--recipe" in message and "train.json" in message
    # The same recipe supplied by hand is accepted (planned only: nothing is trained here).
    plan = plan_references(bare, k=2, recipe=digits_convnet_dir / "train.json", root_uri=str(tmp_path / "a"))
    assert plan.recipe["model"] == "convnet"


def test_a_recipe_of_other_data_or_another_model_is_refused(digits_convnet_dir, tmp_path):
    recipe = json.loads((digits_convnet_dir / "train.json").read_text())
    with pytest.raises(AuditError, match="data set"):
        plan_references(digits_convnet_dir, recipe={**recipe, "dataset_fingerprint": "0" * 64},
                        root_uri=str(tmp_path))
    with pytest.raises(AuditError, match="written for model"):
        plan_references(digits_convnet_dir, recipe={**recipe, "fingerprint": "f" * 64},
                        root_uri=str(tmp_path))


def test_a_retrained_roots_exclusions_are_out_of_every_reference_model(digits_convnet_dir, digits_train,
                                                                       tmp_path):
    excluded = list(digits_train.ids[:7])
    recipe = {**json.loads((digits_convnet_dir / "train.json").read_text()), "excluded": len(excluded),
              "excluded_sha256": excluded_digest(excluded)}
    with pytest.raises(AuditError, match="trained without 7"):
        plan_references(digits_convnet_dir, recipe=recipe, root_uri=str(tmp_path))
    plan = plan_references(digits_convnet_dir, recipe=recipe, exclude_ids=excluded, root_uri=str(tmp_path))
    membership = plan.membership(digits_train)
    assert not membership[:, :7].any() and (membership[:, 7:].sum(dim=0) == 4).all()


def test_retiring_removes_the_set(references, digits_convnet_dir, artifacts, tmp_path):
    copy_root = tmp_path / "artifacts"
    shutil.copytree(artifacts, copy_root)
    assert find_references(digits_convnet_dir, root_uri=str(copy_root)) is not None
    assert retire_references(references.model_fingerprint, root_uri=str(copy_root)) > 0
    assert find_references(digits_convnet_dir, root_uri=str(copy_root)) is None


@pytest.mark.slow
def test_retrain_through_the_cli_leaves_out_the_lineages_requests(digits_convnet_dir, digits_train, tmp_path,
                                                                  capsys):
    """A registered root, a version that honours a ledger request, then `lethe retrain` of that version:
    the new version is trained without the request's samples and one more named sample, gated and tagged."""
    from lethe.cli import main
    from lethe.data import subject_map
    from lethe.ledger import Ledger
    from lethe.registry import PromotionDecision, Registry

    with lethe_home(tmp_path / "home"):
        register_champion(digits_convnet_dir)
        request = Ledger().add("subject-00003").request.id
        child = _descendant(digits_convnet_dir, tmp_path / "child")
        version = Registry().register_version(child, gate=PromotionDecision(True, ("test",)),
                                              scenario="subject",
                                              parent_version="1", request_ids=[request]).version
        extra = "digits/train/5"
        code = main(["retrain", "--model", "champion", "--exclude-ids", extra, "--epochs", "2",
                     "--out", str(tmp_path / "run"), "--device", "cpu", "--no-progress", "--json"])
        assert code == 0
        result = json.loads(capsys.readouterr().out)
        subject_samples = subject_map(digits_train)["subject-00003"]
        expected = list(dict.fromkeys([*subject_samples, extra]))
        assert result["excluded"] == len(expected) and result["request_ids"] == 1
        assert result["parent_version"] == version
        record = json.loads((tmp_path / "run" / "model" / "train.json").read_text())
        assert record["excluded_sha256"] == excluded_digest(expected)  # exactly those samples, none other
        assert record["model"] == "convnet" and record["epochs"] == 2
        info = Registry().version(result["version"])
        assert info.tags["lethe.remedy"] == "retrain" and info.parent_version == version
        assert request in info.request_ids  # it still honours the lineage's request
        assert result["decision"] in ("pass", "review", "stale")


def test_retrain_refuses_a_directory_unlearned_outside_the_registry(digits_convnet_dir, tmp_path):
    from lethe.steps.retrain import retrain

    child = _descendant(digits_convnet_dir, tmp_path / "child")
    with lethe_home(tmp_path / "home"), pytest.raises(AuditError, match="models:/NAME/VERSION"):
        retrain(str(child), out_dir=tmp_path / "out", parent_dir=tmp_path / "parent",
                forget_path=tmp_path / "forget", exclude_ids=["digits/train/1"], progress=False)
    assert not (tmp_path / "out").exists()
