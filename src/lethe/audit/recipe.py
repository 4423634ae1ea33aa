"""A model version's training recipe: the root version's train.json (what `lethe train` wrote).

Every unlearned descendant shares its root's recipe: the unlearn step records the root's fingerprint
on each card it writes (`root_fingerprint`), and the recipe is stored with the root's reference models,
so a descendant finds it there. Reference models and the `retrain` remedy both train from it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lethe.errors import AuditError
from lethe.models.checkpoint import ModelCard

RECIPE_FILE = "train.json"
#: What a recipe must name; the rest has `lethe train`'s defaults.
REQUIRED = ("model", "dataset", "epochs")
DEFAULTS: dict[str, Any] = {"arch_kwargs": {}, "batch_size": 128, "lr": 3e-3, "augment": False, "seed": 0,
                            "excluded": 0, "excluded_sha256": None}
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
    return recipe


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
