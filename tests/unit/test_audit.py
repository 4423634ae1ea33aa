"""Reference models per model version (lethe.audit) and the retrain remedy, on digits.

One set of K=4 reference models (4 epochs each, ~2 s on one thread) is trained for the module and
shared; the other tests plan (no training), reuse it, or train sets of 2 models of 1 epoch.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from lethe.audit import (
    PER_SAMPLE,
    PER_SUBJECT,
    ReferenceSet,
    find_references,
    groups_fingerprint,
    membership_design,
    plan_references,
    prepare_references,
    reference_model,
    retire_references,
    subject_groups,
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


def test_the_design_keeps_every_subject_whole_and_balanced():
    # 300 subjects of 1 to 9 samples, and 200 samples of no subject.
    sizes = torch.randint(1, 10, (300,), generator=torch.Generator().manual_seed(0))
    groups = torch.cat([torch.arange(300).repeat_interleave(sizes), torch.full((200,), -1)])
    groups = groups[torch.randperm(len(groups), generator=torch.Generator().manual_seed(1))]
    for k in (4, 8, 5):
        membership = membership_design(k, len(groups), seed=3, groups=groups)
        for subject in range(300):
            columns = membership[:, groups == subject]
            assert (columns == columns[:, :1]).all(), subject  # wholly in or out of every model
        per_subject = torch.stack([membership[:, groups == s][:, 0] for s in range(300)], dim=1).sum(dim=0)
        expected = {k // 2} if k % 2 == 0 else {k // 2, k // 2 + 1}
        assert set(per_subject.tolist()) == expected  # each subject in ⌊K/2⌋ (or ⌈K/2⌉) models
        per_model = torch.stack([membership[:, groups == s][:, 0] for s in range(300)], dim=1).sum(dim=1)
        assert ((per_model > 0.3 * 300) & (per_model < 0.7 * 300)).all()  # each model: about half of them
        alone = membership[:, groups == -1]
        assert set(alone.sum(dim=0).tolist()) <= expected and not (alone == alone[:, :1]).all()
    # Without groups: the per-sample design of before, draw for draw.
    assert torch.equal(membership_design(8, 50, seed=3, groups=torch.full((50,), -1)),
                       membership_design(8, 50, seed=3))


def test_subjects_that_share_a_sample_are_one_group_and_the_fingerprint_names_no_one():
    ids = [f"s{i}" for i in range(8)]
    groups = subject_groups(ids, {"ann": ["s0", "s1"], "bob": ["s1", "s2"], "cy": ["s5"], "dee": ["x9"]})
    assert groups.tolist() == [0, 0, 0, -1, -1, 1, -1, -1]  # ann and bob share s1: one group
    renamed = subject_groups(ids, {"p": ["s2", "s1", "s0"], "q": ["s5"]})
    assert groups_fingerprint(ids, groups) == groups_fingerprint(ids, renamed)  # names play no part
    moved = subject_groups(ids, {"p": ["s0", "s1", "s2"], "q": ["s6"]})
    assert groups_fingerprint(ids, groups) != groups_fingerprint(ids, moved)


def test_references_on_digits(references, digits_train, digits_test, digits_convnet_dir):
    assert references.k == K and references.train_ids == list(digits_train.ids)
    assert references.test_ids == list(digits_test.ids)
    assert (references.membership.sum(dim=0) == K // 2).all()
    # Halves by subject: the synthetic subjects of digits, each wholly in or out of every model.
    from lethe.data import subject_map

    assert references.design == PER_SUBJECT and references.person_refusal is None
    groups = subject_groups(digits_train.ids, subject_map(digits_train))
    assert torch.equal(references.groups, groups)
    assert references.subject_map_fingerprint == groups_fingerprint(digits_train.ids, groups)
    for subject in range(int(groups.max()) + 1):
        columns = references.membership[:, groups == subject]
        assert (columns == columns[:, :1]).all()
    assert torch.equal(references.train_labels, digits_train.labels)
    assert references.person_null.persons == int(groups.max()) + 1
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
    import lethe.audit.training as module

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


def test_references_repeat_the_roots_weight_decay(digits_train, digits_test, tmp_path, monkeypatch):
    """A root trained without weight decay gets reference models trained without it; a recipe that
    says otherwise is refused in one line. A train.json of before the field means 5e-4, as it did."""
    import lethe.audit.training as module
    from lethe.audit.recipe import check_recipe
    from lethe.models import read_card
    from lethe.models.baseline import train_model_dir

    record = train_model_dir("digits", "convnet", tmp_path / "root", epochs=1, batch_size=64,
                             arch_kwargs={"width": 8}, weight_decay=0.0, device="cpu", progress=False,
                             train=digits_train, test=digits_test)
    assert record["weight_decay"] == 0.0 and record["optimizer"] == "adamw"
    seen = []
    real = module.train_classifier

    def spy(*args, **kwargs):
        seen.append((kwargs["weight_decay"], kwargs["lr"], kwargs["batch_size"], kwargs["epochs"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "train_classifier", spy)
    refs = prepare_references(tmp_path / "root", k=2, root_uri=str(tmp_path / "a"), device="cpu",
                              progress=False)
    assert seen == [(0.0, record["lr"], 64, 1)] * 2
    assert refs.recipe["weight_decay"] == 0.0
    assert read_card(reference_model(refs, 1, tmp_path / "r1")).extra["training"]["weight_decay"] == 0.0
    with pytest.raises(AuditError) as refused:
        plan_references(tmp_path / "root", k=2, recipe={**record, "weight_decay": 5e-4},
                        root_uri=str(tmp_path / "b"))
    message = str(refused.value)
    assert "\n" not in message and "weight_decay 0.0005 given, 0.0 recorded" in message
    # What today's main wrote (no optimizer, no weight decay) meant AdamW with lethe's 5e-4.
    old = {key: value for key, value in record.items()
           if key not in ("weight_decay", "optimizer", "schedule")}
    meant = check_recipe(old, "old")
    assert meant["weight_decay"] == 5e-4 and meant["optimizer"] == "adamw" and meant["schedule"] == "onecycle"
    with pytest.raises(AuditError, match="sgd"):
        check_recipe({**record, "optimizer": "sgd"}, "x")


def _as_version_1(references: ReferenceSet, uri: Path) -> None:
    """The set as today's main stored it: lethe-references/1, no design, no groups, no labels."""
    from safetensors.torch import save

    from lethe.storage import put_bytes

    tensors = save({"membership": references.membership.to(torch.uint8).contiguous(),
                    "train_logits": references.train_logits.contiguous(),
                    "test_logits": references.test_logits.contiguous()})
    sha = put_bytes(tensors, str(uri / "references.safetensors"))
    manifest = {"format": "lethe-references/1", "k": references.k, "train_ids": references.train_ids,
                "test_ids": references.test_ids, "model_fingerprint": references.model_fingerprint,
                "dataset_fingerprint": references.dataset_fingerprint, "recipe": references.recipe,
                "seed": references.seed, "epochs": references.epochs, "excluded": references.excluded,
                "reference_fingerprints": references.reference_fingerprints,
                "created_at": references.created_at, "num_classes": references.num_classes,
                "lethe_version": "0.1.0", "tensors_sha256": sha}
    put_bytes((json.dumps(manifest, indent=1) + "\n").encode(), str(uri / "references.json"))


def test_an_old_per_sample_set_reads_but_judges_no_person_until_rebuilt(references, digits_convnet_dir,
                                                                        digits_train, digits_test, tmp_path,
                                                                        monkeypatch, capsys):
    from lethe.audit import references_uri
    from lethe.cli import main
    from lethe.evaluation import decide
    from lethe.evaluation.per_example import per_example_evidence

    root = tmp_path / "artifacts"
    _as_version_1(references, Path(references_uri(references.model_fingerprint, str(root))))
    old = find_references(digits_convnet_dir, root_uri=str(root))
    assert old.design == PER_SAMPLE and old.groups is None
    assert torch.equal(old.train_logits, references.train_logits)  # readable as before
    refusal = old.person_refusal
    assert refusal is not None and "\n" not in refusal and "per-sample" in refusal and "--rebuild" in refusal
    # The evaluation: per-sample shares as detail, no person judged, the gate sends it to a human.
    rows = torch.arange(20)
    parent = {"forget": references.train_logits[0, rows], "test": references.test_logits[0]}
    evidence = per_example_evidence(parent, parent, {"forget": digits_train.labels[rows],
                                                     "test": digits_test.labels},
                                    old.outputs(rows), requests={"r1": torch.arange(10),
                                                                 "r2": torch.arange(10, 20)}).evidence
    assert evidence["refused"] == refusal and evidence["unit"] is None
    assert {r["outcome"] for r in evidence["requests"].values()} == {"inconclusive"}
    assert "share" in evidence["requests"]["r1"]["fpr"]["0.01"]["candidate"]  # the per-sample detail
    metrics = {"retain_accuracy": 1.0, "test_accuracy": 1.0, "forget_accuracy": 1.0, "mia": {"gap": 0.0}}
    gate = decide(metrics, {**metrics, "parameters_changed": True}, "subject", per_example=evidence)
    assert gate.decision == "review" and gate.reasons == [refusal]
    # `lethe audit prepare` says so (and trains nothing) ...
    import lethe.audit.training as module

    monkeypatch.setenv("LETHE_ARTIFACTS", str(root))
    monkeypatch.setattr(module, "train_reference", lambda *a, **k: pytest.fail("trained without --rebuild"))
    assert main(["audit", "prepare", "--model", str(digits_convnet_dir), "--k", str(K)]) == 0
    assert refusal in capsys.readouterr().out.splitlines()
    monkeypatch.undo()
    # ... and rebuilds it on request: by subject, in place.
    rebuilt = prepare_references(digits_convnet_dir, k=K, epochs=1, root_uri=str(root), device="cpu",
                                 progress=False, rebuild=True)
    assert rebuilt.design == PER_SUBJECT and rebuilt.person_refusal is None and rebuilt.uri == old.uri
    assert find_references(digits_convnet_dir, root_uri=str(root)).design == PER_SUBJECT
