"""A model version's training recipe: the root version's train.json (what `lethe train` wrote).

Every unlearned descendant shares its root's recipe: the unlearn step records the root's fingerprint
on each card it writes (`root_fingerprint`), and the recipe is stored with the root's reference models,
so a descendant finds it there. Reference models and the `retrain` remedy both train from it.

They repeat it exactly: optimizer, schedule, weight decay, learning rate, batch size, epochs and
augmentation. A train.json written before the optimizer and weight decay were recorded means what that
lethe did: AdamW, one-cycle, weight decay 5e-4 (`lethe.models.training.DEFAULT_WEIGHT_DECAY`). A recipe
supplied by hand that differs from what the model's card, its train.json or its stored reference set
records is refused in one line (`check_same_recipe`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lethe.errors import AuditError
from lethe.models.checkpoint import ModelCard

RECIPE_FILE = "train.json"
#: What a recipe must name; the rest has `lethe train`'s defaults.
REQUIRED = ("model", "dataset", "epochs")
#: Training fields older train.json files lack mean what that lethe did (see the module docstring).
DEFAULTS: dict[str, Any] = {"arch_kwargs": {}, "batch_size": 128, "lr": 3e-3, "augment": False, "seed": 0,
                            "excluded": 0, "excluded_sha256": None, "optimizer": "adamw",
                            "schedule": "onecycle", "weight_decay": 5e-4}
#: What lethe's training can repeat.
OPTIMIZERS = ("adamw",)
SCHEDULES = ("onecycle",)
#: The fields a reference model or a retraining must repeat, compared between a supplied recipe and
#: what the model records.
TRAINING_KEYS = ("model", "optimizer", "schedule", "weight_decay", "lr", "batch_size", "epochs", "augment",
                 "seed")
#: How to supply a recipe, named in every refusal.
HOW_TO_SUPPLY = "pass the train.json `lethe train` wrote for it with --recipe FILE"


def root_fingerprint(card: ModelCard) -> str:
    """The fingerprint of the version whose recipe this model descends from (itself for a trained one)."""
    return str(card.extra.get("root_fingerprint") or card.fingerprint)


def check_recipe(raw: Any, where: str) -> dict[str, Any]:
    """The recipe with defaults filled in; a malformed one is a one-line AuditError naming `where`."""
    if not isinstance(raw, Mapping):
        raise AuditError(f"the recipe at {where} is not a JSON object")
    missing = [key for key in REQUIRED if raw.get(key) in (None, "")]
    if missing:
        raise AuditError(f"the recipe at {where} names no {', '.join(missing)}: {HOW_TO_SUPPLY}")
    recipe = {**DEFAULTS, **dict(raw)}
    epochs = recipe["epochs"]
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise AuditError(f"the recipe at {where} has epochs {epochs!r}; expected a positive integer")
    if not isinstance(recipe["arch_kwargs"], Mapping):
        raise AuditError(f"the recipe at {where} has arch_kwargs {recipe['arch_kwargs']!r}; expected "
                         "a mapping")
    if recipe["optimizer"] not in OPTIMIZERS or recipe["schedule"] not in SCHEDULES:
        raise AuditError(f"the recipe at {where} trained with {recipe['optimizer']!r} and a "
                         f"{recipe['schedule']!r} schedule; lethe repeats only {', '.join(OPTIMIZERS)} with "
                         f"{', '.join(SCHEDULES)}")
    for key, low in (("weight_decay", 0.0), ("lr", None)):
        value = recipe[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or (value < low if low is not None else value <= 0):
            bound = ">= 0" if low is not None else "> 0"
            raise AuditError(f"the recipe at {where} has {key} {value!r}; expected a finite number {bound}")
    batch = recipe["batch_size"]
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise AuditError(f"the recipe at {where} has batch_size {batch!r}; expected a positive integer")
    return recipe


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-15)
    return a == b


def recipe_differences(given: Mapping[str, Any], recorded: Mapping[str, Any]) -> list[str]:
    """'key given vs recorded' for each training field both name and on which they differ."""
    given, recorded = {**DEFAULTS, **given}, {**DEFAULTS, **recorded}
    return [f"{key} {given[key]!r} given, {recorded[key]!r} recorded" for key in TRAINING_KEYS
            if key in given and key in recorded and not _same(given[key], recorded[key])]


def check_same_recipe(given: Mapping[str, Any], recorded: Mapping[str, Any] | None, what: str) -> None:
    """Refuse, in one line, a recipe that differs from the one `what` records (no record: nothing to
    compare)."""
    if recorded is None:
        return
    differences = recipe_differences(given, recorded)
    if differences:
        raise AuditError(f"the recipe differs from the one {what} records ({'; '.join(differences)}): "
                         "reference models and retraining repeat the root's recipe exactly; pass its own "
                         "train.json")


def card_recipe(card: ModelCard) -> dict[str, Any] | None:
    """The training a trained model's card records (`training`, written by `lethe train`), with its
    architecture; None for a card without one (an older model, or an unlearned descendant)."""
    training = card.extra.get("training")
    if not isinstance(training, Mapping):
        return None
    return {"model": card.arch, **dict(training)}


def read_recipe(path: str | Path) -> dict[str, Any]:
    """A recipe file (train.json), checked."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise AuditError(f"cannot read the recipe {path}: {exc}") from exc
    return check_recipe(raw, str(path))


def own_recipe(model_dir: str | Path, card: ModelCard) -> dict[str, Any] | None:
    """The train.json beside a trained (root) model, when it belongs to that model; else None."""
    path = Path(model_dir) / RECIPE_FILE
    if not path.is_file():
        return None
    recipe = read_recipe(path)
    recorded = recipe.get("fingerprint")
    if recorded and recorded != card.fingerprint:
        return None  # a train.json copied beside another model: not this model's recipe
    check_same_recipe(recipe, card_recipe(card), f"the card of model {card.fingerprint[:12]}")
    return recipe


def matching_recipe(recipe: Mapping[str, Any] | str | Path, fingerprint: str) -> dict[str, Any]:
    """A recipe supplied for the root `fingerprint` (a dict or a file); one that records another model's
    fingerprint is refused (it would train references of a different model)."""
    checked = read_recipe(recipe) if isinstance(recipe, str | Path) else check_recipe(recipe, "--recipe")
    recorded = checked.get("fingerprint")
    if recorded and recorded != fingerprint:
        raise AuditError(f"the recipe was written for model {str(recorded)[:12]}, not for the root version "
                         f"{fingerprint[:12]} of this model")
    return checked
