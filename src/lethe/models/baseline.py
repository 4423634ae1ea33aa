"""Train a model directory from a data set: the baseline that gets unlearned, or, with samples
excluded, the "retrained without the forget set" gold standard. What `lethe train` runs.

Writes DIR/model.safetensors, DIR/model.json and DIR/train.json. Subject ids are personal data:
train.json records how many samples were excluded and a sha256 of their sorted ids, never subjects.

train.json is the version's recipe: reference models and the retrain remedy repeat it exactly, so it
records everything the training did (optimizer, schedule, weight decay, learning rate, batch size,
epochs, augmentation, seed); the card keeps the same under `training` (`training_recipe`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import lethe
from lethe.data import SampleSet, forget_mask, load_dataset, subject_map
from lethe.errors import DataError, EmptyForgetSetError
from lethe.models.checkpoint import is_model_dir, read_card, save_model
from lethe.models.training import DEFAULT_WEIGHT_DECAY, OPTIMIZER, SCHEDULE, train_classifier
from lethe.models.zoo import build_model

TRAIN_FILE = "train.json"


def excluded_digest(ids: Sequence[str]) -> str:
    """sha256 of the sorted ids, one per line: names an exclusion without listing it."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def training_recipe(*, epochs: int, batch_size: int, lr: float, weight_decay: float, augment: bool,
                    seed: int) -> dict[str, Any]:
    """What a from-scratch training did, as train.json and the card's `training` record it."""
    return {"optimizer": OPTIMIZER, "schedule": SCHEDULE, "weight_decay": float(weight_decay),
            "lr": float(lr), "batch_size": int(batch_size), "epochs": int(epochs), "augment": bool(augment),
            "seed": int(seed)}


def _architecture(model: str, arch_kwargs: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """An arch name, or a model directory whose architecture (not weights) is reused."""
    if is_model_dir(model):
        card = read_card(model)
        return card.arch, {**card.arch_kwargs, **(arch_kwargs or {})}
    return model, dict(arch_kwargs or {})


def train_model_dir(
    dataset: str,
    model: str,
    out: str | Path,
    *,
    epochs: int,
    exclude_ids: Sequence[str] = (),
    exclude_subjects: Sequence[str] = (),
    subjects_file: str | Path | None = None,
    exclude_class: int | None = None,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
    augment: bool = False,
    arch_kwargs: dict[str, Any] | None = None,
    data_dir: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
    train: SampleSet | None = None,
    test: SampleSet | None = None,
) -> dict[str, Any]:
    """Train `model` (an arch name or a model directory to copy the architecture of) on `dataset`
    minus the excluded samples; returns what it wrote to train.json.

    `train`/`test` may be passed preloaded (they must be `dataset`'s splits).
    """
    started = time.perf_counter()
    arch, kwargs = _architecture(model, arch_kwargs)
    # Every input is checked before any work starts: bad input changes nothing.
    train = train if train is not None else load_dataset(dataset, "train", data_dir=data_dir)
    test = test if test is not None else load_dataset(dataset, "test", data_dir=data_dir)
    excluded: list[str] = []
    if exclude_ids or exclude_subjects or exclude_class is not None:
        mapping = subject_map(train, subjects_file) if exclude_subjects else None
        mask = forget_mask(train, ids=exclude_ids, subjects=exclude_subjects, subjects_map=mapping,
                           forget_class=exclude_class)
        if not bool(mask.any()):
            raise EmptyForgetSetError("the exclusion names no sample: nothing to exclude")
        if bool(mask.all()):
            raise DataError("the exclusion names every training sample: nothing left to train on")
        excluded = [train.ids[i] for i in mask.nonzero().flatten().tolist()]
        kept = train.subset(~mask)
    else:
        kept = train
    torch.manual_seed(seed)
    network = build_model(arch, num_classes=train.num_classes, in_channels=train.in_channels, **kwargs)
    result = train_classifier(network, kept, test, epochs=epochs, batch_size=batch_size, lr=lr,
                              weight_decay=weight_decay, seed=seed, device=device, progress=progress,
                              augment=augment)
    recipe = training_recipe(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                             augment=augment, seed=seed)
    card = save_model(network, out, {
        "dataset": train.name,
        "normalization": train.normalization,
        "classes": list(train.classes) if train.classes else None,
        "image_size": list(train.image_size),
        "dataset_fingerprint": train.fingerprint(),
        "trained_on_fingerprint": kept.fingerprint(),
        "excluded": len(excluded),
        "training": recipe,
    })
    record = {
        "test_accuracy": result.test_accuracy,
        "train_accuracy": result.train_accuracy,
        "seconds": result.seconds,
        "wall_seconds": time.perf_counter() - started,
        "model": arch,
        "arch_kwargs": kwargs,
        "dataset": train.name,
        "fingerprint": card.fingerprint,
        "dataset_fingerprint": train.fingerprint(),
        "trained_on_fingerprint": kept.fingerprint(),
        "n_train": len(kept),
        "n_test": len(test),
        "excluded": len(excluded),
        "excluded_sha256": excluded_digest(excluded) if excluded else None,
        **recipe,
        "device": result.device,
        "torch_threads": torch.get_num_threads(),
        "history": result.history,
        "lethe_version": lethe.__version__,
    }
    (Path(out) / TRAIN_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record
