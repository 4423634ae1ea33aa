"""Preparing a version's reference models: train each on its half with the root's recipe, compute
their logits once, store the set (`lethe.audit.references` describes it)."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lethe.audit.location import MANIFEST_FILE, MODELS_DIR, model_name, retire_references
from lethe.audit.plan import DEFAULT_K, ReferencePlan, plan_references, reference_seed
from lethe.audit.references import ReferenceSet, find_references
from lethe.data import SampleSet
from lethe.devices import default_device
from lethe.errors import AuditError, StorageError
from lethe.models.checkpoint import load_model, read_card, save_model
from lethe.models.training import train_classifier
from lethe.models.zoo import build_model
from lethe.storage import exists, get_dir, join_uri, put_dir

log = logging.getLogger(__name__)

LOGITS_BATCH_SIZE = 512


def train_reference(plan: ReferencePlan, index: int, out_dir: str | Path, *, train: SampleSet | None = None,
                    test: SampleSet | None = None, device: str | None = None, progress: bool = True) -> Path:
    """Train reference model `index` of the plan on its half; writes a model directory to `out_dir`."""
    if not 0 <= index < plan.k:
        raise AuditError(f"reference model {index} is outside 0..{plan.k - 1}")
    if train is None or test is None:
        train, test = plan.splits()
    from lethe.audit.recipe import check_recipe

    half = plan.membership(train)[index]
    recipe = check_recipe(plan.recipe, "the plan")  # the training fields an older plan lacks: their defaults
    model_seed = reference_seed(plan.seed, index)
    torch.manual_seed(model_seed)
    network = build_model(str(recipe["model"]), num_classes=train.num_classes, in_channels=train.in_channels,
                          **dict(recipe["arch_kwargs"]))
    # The root's recipe exactly: optimizer and schedule (checked), weight decay, lr, batch size, epochs,
    # augmentation; only the seed differs (SEED_SCHEME).
    result = train_classifier(network, train.subset(half.nonzero().flatten()), None, epochs=plan.epochs,
                              batch_size=int(recipe["batch_size"]), lr=float(recipe["lr"]),
                              weight_decay=float(recipe["weight_decay"]), seed=model_seed,
                              device=device, progress=progress, augment=bool(recipe["augment"]))
    save_model(network, out_dir, {
        "dataset": train.name, "normalization": train.normalization,
        "classes": list(train.classes) if train.classes else None, "image_size": list(train.image_size),
        "dataset_fingerprint": plan.dataset_fingerprint,
        # An audit artifact of that root version: never registered, never served.
        "reference_of": plan.root_fingerprint, "reference_index": index, "reference_seed": model_seed,
        "reference_train_seconds": round(result.seconds, 3),
        "training": {key: recipe[key] for key in ("optimizer", "schedule", "weight_decay", "lr", "batch_size",
                                                  "augment")} | {"epochs": plan.epochs, "seed": model_seed}})
    return Path(out_dir)


@torch.no_grad()
def logits_of(model: nn.Module, samples: SampleSet, *, device: str) -> torch.Tensor:
    """float32 [N, C] logits of `model` (eval mode) on every sample, in order, on the CPU."""
    model.to(device).eval()
    outputs = [model(x).float().cpu()
               for x in samples.batches(LOGITS_BATCH_SIZE, with_labels=False, device=device)]
    model.to("cpu")
    return torch.cat(outputs)


def assemble_references(plan: ReferencePlan, model_dirs: Sequence[str | Path], *,
                        train: SampleSet | None = None, test: SampleSet | None = None,
                        device: str | None = None, progress: bool = True) -> ReferenceSet:
    """Each reference model's logits on both splits, stored with the models under the plan's URI."""
    if len(model_dirs) != plan.k:
        raise AuditError(f"the plan has {plan.k} reference models, {len(model_dirs)} were trained")
    if train is None or test is None:
        train, test = plan.splits()
    device = device or default_device()
    train_logits, test_logits, fingerprints = [], [], []
    by_index: dict[int, Path] = {}
    for model_dir in model_dirs:
        card = read_card(model_dir)
        if card.extra.get("reference_of") != plan.root_fingerprint:
            raise AuditError(f"{model_dir} is not a reference model of {plan.root_fingerprint[:12]}")
        by_index[int(card.extra["reference_index"])] = Path(model_dir)
    if sorted(by_index) != list(range(plan.k)):
        raise AuditError(f"reference models {sorted(by_index)} do not make the set 0..{plan.k - 1}")
    for index in range(plan.k):
        model, card = load_model(by_index[index])
        train_logits.append(logits_of(model, train, device=device))
        test_logits.append(logits_of(model, test, device=device))
        fingerprints.append(card.fingerprint)
    for index in range(plan.k):  # the models first: a manifest never names models that are not stored
        put_dir(by_index[index], join_uri(plan.uri, MODELS_DIR, model_name(index)))
    groups = plan.group_tensor(len(train))
    references = ReferenceSet(
        k=plan.k, train_ids=list(train.ids), membership=plan.membership(train),
        train_logits=torch.stack(train_logits), test_logits=torch.stack(test_logits),
        model_fingerprint=plan.root_fingerprint, dataset_fingerprint=plan.dataset_fingerprint,
        recipe=plan.recipe, uri=plan.uri, test_ids=list(test.ids), seed=plan.seed, epochs=plan.epochs,
        excluded=len(plan.excluded_ids), reference_fingerprints=fingerprints,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), design=plan.design,
        subject_map_fingerprint=plan.subject_map_fingerprint, groups=groups,
        train_labels=None if groups is None else train.labels,
        test_labels=None if groups is None else test.labels)
    return references.save(plan.uri)


def stored_references(plan: ReferencePlan) -> ReferenceSet | None:
    """The set already stored for the plan's root; one of another size or seed is refused, not mixed.
    A per-sample one is kept too (it judges no person: `lethe audit prepare --rebuild` replaces it)."""
    if not exists(join_uri(plan.uri, MANIFEST_FILE)):
        return None
    stored = ReferenceSet.load(plan.uri)
    check_same_set(stored, plan.k, plan.seed)
    if stored.person_refusal is not None:
        log.warning("%s", stored.person_refusal)
    return stored


def check_same_set(stored: ReferenceSet, k: int, seed: int) -> None:
    """Refuse a request for a set of another size or seed than the stored one."""
    if (stored.k, stored.seed) != (k, seed):
        raise AuditError(f"reference models of {stored.model_fingerprint[:12]} exist with K={stored.k}, seed "
                         f"{stored.seed}: use those, or replace them (`lethe audit prepare --rebuild`)")


def reference_model(references: ReferenceSet, index: int, dest_dir: str | Path) -> Path:
    """Download reference model `index` of a stored set (verified) into `dest_dir`."""
    try:
        return get_dir(join_uri(references.uri, MODELS_DIR, model_name(index)), dest_dir)
    except StorageError as exc:
        raise AuditError(f"reference model {index} of {references.uri} cannot be read: {exc}") from exc


def prepare_references(model_dir: str | Path, *, k: int = DEFAULT_K, seed: int = 0,
                       root_uri: str | None = None, device: str | None = None, progress: bool = True,
                       epochs: int | None = None,
                       recipe: Mapping[str, Any] | str | Path | None = None,
                       exclude_ids: Sequence[str] = (), subject_map: str | Path | None = None,
                       rebuild: bool = False) -> ReferenceSet:
    """The reference models of the version at `model_dir` (or of its root): stored ones when there,
    else K trained one after another here, stored and returned. See `plan_references` for the
    recipe, `exclude_ids` and `subject_map`; `epochs` overrides the recipe's (tests, quick runs).

    A stored per-sample set (version 1) is returned as it is, unless `rebuild`: then, as for any
    stored set with `rebuild`, K models are trained first and replace it only once all are trained."""
    card = read_card(model_dir)
    found = find_references(card, root_uri=root_uri)
    if found is not None and not rebuild:
        check_same_set(found, k, seed)
        if found.person_refusal is not None:
            log.warning("%s", found.person_refusal)
        return found
    plan = plan_references(model_dir, k=k, seed=seed, epochs=epochs, recipe=recipe, exclude_ids=exclude_ids,
                           root_uri=root_uri, subject_map=subject_map)
    return train_references(plan, device=device, progress=progress, replace_stored=found is not None)


def train_references(plan: ReferencePlan, *, device: str | None = None, progress: bool = True,
                     replace_stored: bool = False) -> ReferenceSet:
    """Train the plan's K models here one after another, then store the set (replacing a stored one
    only when `replace_stored`, and only once every model is trained)."""
    train, test = plan.splits()
    device = device or default_device()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lethe-references-") as tmp:
        dirs = [train_reference(plan, index, Path(tmp) / model_name(index), train=train, test=test,
                                device=device, progress=progress) for index in range(plan.k)]
        if replace_stored:
            retire_references(plan.root_fingerprint, root_uri=None, uri=plan.uri)
        references = assemble_references(plan, dirs, train=train, test=test, device=device, progress=progress)
    log.info("trained %d reference models of %s in %.1f s", plan.k, plan.root_fingerprint[:12],
             time.perf_counter() - started)
    return references
