"""The `retrain` remedy: the exact answer when the evidence says a person is not gone.

Trains the version's own recipe (its root's train.json, found through the lineage) on its data minus
every sample the version must forget: the samples of every request its lineage honours (the ledger
resolves them), the classes its lineage forgot, and this request's. The result is a new root (its
train.json records what was left out, as a count and a sha256) that is evaluated, registered and
gated like any candidate, tagged `lethe.remedy=retrain`. When it becomes champion, the reference
models of the root it replaces are retired.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lethe.audit.recipe import (
    HOW_TO_SUPPLY,
    card_recipe,
    check_recipe,
    check_same_recipe,
    matching_recipe,
    own_recipe,
    root_fingerprint,
)
from lethe.errors import AuditError, EmptyForgetSetError
from lethe.forgetting.spec import ForgetSpec
from lethe.models import read_card
from lethe.steps.audit import REMEDY_TAG, RETRAIN_FILE, fetch_audited_model, forgotten_by
from lethe.steps.results import RegisteredVersion, RetrainResult

RETRAIN_FORMAT = "lethe-retrain/1"


def _recipe(audited: Any, recipe: str | Path | None, root_uri: str | None) -> dict[str, Any]:
    card = read_card(audited.model_dir)
    root = root_fingerprint(card)
    if recipe is not None:
        chosen = matching_recipe(recipe, root)
        check_same_recipe(chosen, card_recipe(card), f"the card of model {card.fingerprint[:12]}")
        check_same_recipe(chosen, audited.recipe, f"the train.json of the root version {root[:12]}")
        return chosen
    if audited.recipe is not None:
        return dict(audited.recipe)
    if root == card.fingerprint:
        found = own_recipe(audited.model_dir, card)
        if found is not None:
            return found
    from lethe.audit import find_references

    references = find_references(card, root_uri=root_uri)
    if references is not None:
        return dict(references.recipe)
    raise AuditError(f"model {card.fingerprint[:12]} has no training recipe (the train.json of its root "
                     f"version {root[:12]}): {HOW_TO_SUPPLY}")


def retrain(
    model: str,
    *,
    out_dir: str | Path,
    parent_dir: str | Path,
    forget_path: str | Path,
    exclude_ids: Sequence[str] = (),
    exclude_subjects: Sequence[str] = (),
    exclude_class: int | None = None,
    subjects_file: str | None = None,
    request_ids: Sequence[str] = (),
    epochs: int | None = None,
    recipe: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
    tracking_uri: str | None = None,
    model_name: str | None = None,
    ledger_url: str | None = None,
    root_uri: str | None = None,
) -> RetrainResult:
    """Fetch `model` into `parent_dir`, train its recipe without everything it must forget into `out_dir`,
    and write the forget set (all of it: the candidate is judged on every sample left out) to `forget_path`.

    `exclude_*`: this request's samples, on top of the lineage's; `request_ids`: this request's ledger ids
    (recorded on the version). A model directory unlearned outside the registry is refused: nothing
    records what it forgot."""
    from lethe.data import forget_mask, load_dataset
    from lethe.data import subject_map as subjects_of
    from lethe.models.baseline import excluded_digest, train_model_dir

    started = time.perf_counter()
    audited = fetch_audited_model(model, parent_dir, tracking_uri=tracking_uri, model_name=model_name)
    card = read_card(parent_dir)
    if not audited.lineage and root_fingerprint(card) != card.fingerprint:
        raise AuditError("this model directory was unlearned outside the registry, so nothing records what "
                         "it "
                         "forgot: name its registered version (models:/NAME/VERSION) to retrain it")
    chosen = check_recipe(_recipe(audited, recipe, root_uri), "the root's recipe")  # old ones: defaults
    dataset = str(chosen["dataset"])
    train, test = load_dataset(dataset, "train"), load_dataset(dataset, "test")
    lineage = forgotten_by(audited, train, ledger_url=ledger_url, tracking_uri=tracking_uri,
                           subject_map=subjects_file)
    mapping = subjects_of(train, subjects_file) if exclude_subjects else None
    current = forget_mask(train, ids=exclude_ids, subjects=exclude_subjects, subjects_map=mapping,
                          forget_class=exclude_class)
    current_ids = [train.ids[i] for i in current.nonzero().flatten().tolist()]
    excluded = list(dict.fromkeys([*lineage.sample_ids, *current_ids]))
    if not excluded:
        raise EmptyForgetSetError("the version forgot nothing the registry or the ledger records and no "
                                  "sample was "
                                  "named: retraining would only reproduce it (name samples with --exclude-*)")
    classes = list(dict.fromkeys([*lineage.forget_classes,
                                  *([exclude_class] if exclude_class is not None else [])]))
    record = train_model_dir(dataset, str(chosen["model"]), out_dir, epochs=int(epochs or chosen["epochs"]),
                             exclude_ids=excluded, seed=int(chosen["seed"]),
                             batch_size=int(chosen["batch_size"]), lr=float(chosen["lr"]),
                             weight_decay=float(chosen["weight_decay"]), augment=bool(chosen["augment"]),
                             arch_kwargs=dict(chosen["arch_kwargs"]), device=device, progress=progress,
                             train=train, test=test)
    # Judged like a class forget when that is all it forgets; otherwise on every sample left out.
    only_class = len(classes) == 1 and not exclude_ids and not exclude_subjects and not lineage.request_ids
    scenario = "class" if only_class else "subject"
    ForgetSpec(scenario=scenario, dataset=dataset, sample_ids=[] if only_class else excluded,
               forget_class=classes[0] if only_class else None, request_ids=list(request_ids),
               parent={"name": audited.fetched.name or model_name or "", "version": audited.fetched.version,
                       "fingerprint": card.fingerprint},
               num_samples=len(excluded), num_subjects=len(set(exclude_subjects))).save(forget_path)
    # Counts and classes only: this file is registered with the model, where sample ids never go.
    (Path(out_dir) / RETRAIN_FILE).write_text(json.dumps({
        "format": RETRAIN_FORMAT, "parent_version": audited.fetched.version,
        "parent_fingerprint": card.fingerprint, "replaces_root_fingerprint": root_fingerprint(card),
        "excluded": len(excluded),
        "excluded_sha256": excluded_digest(excluded), "lineage_requests": len(lineage.request_ids),
        "forget_classes": classes, "epochs": record["epochs"]}, indent=2) + "\n")
    return RetrainResult(out_dir=Path(out_dir), scenario=scenario, excluded=len(excluded),
                         request_ids=len(lineage.request_ids), forget_classes=classes,
                         epochs=int(record["epochs"]), test_accuracy=record["test_accuracy"],
                         parent_version=audited.fetched.version,
                         seconds=round(time.perf_counter() - started, 3))


def register_retrained(
    candidate_dir: str | Path,
    evaluation_dir: str | Path,
    forget_path: str | Path,
    *,
    run_id: str,
    model_name: str | None = None,
    tracking_uri: str | None = None,
    root_uri: str | None = None,
) -> RegisteredVersion:
    """`register_and_gate` for a retrained candidate, then the `lethe.remedy=retrain` tag; a retrained
    version that became champion retires the reference models of the root it replaced."""
    from lethe.audit import retire_references
    from lethe.registry import Registry
    from lethe.registry.client import mlflow_errors
    from lethe.steps.register import register_and_gate

    registered = register_and_gate(candidate_dir, evaluation_dir, forget_path, run_id=run_id,
                                   model_name=model_name, tracking_uri=tracking_uri)
    registry = Registry(tracking_uri, registered.model_name)
    with mlflow_errors(registry.tracking_uri):
        registry.client.set_model_version_tag(registered.model_name, registered.version, REMEDY_TAG,
                                              "retrain")
    if registered.promoted:
        info = json.loads((Path(candidate_dir) / RETRAIN_FILE).read_text())
        retire_references(str(info["replaces_root_fingerprint"]), root_uri=root_uri)
    return registered
