"""The plan of a version's reference models: its root, recipe, data, exclusions and subjects, fixed before
any model is trained (`lethe audit prepare` makes it in process; the `reference-models` pipeline stores
it as its `plan` artifact and every training task reads it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from lethe.audit.design import NO_GROUP, groups_fingerprint, membership_design, subject_groups
from lethe.audit.location import references_uri, stored_manifest
from lethe.audit.recipe import (
    HOW_TO_SUPPLY,
    card_recipe,
    check_same_recipe,
    matching_recipe,
    own_recipe,
    root_fingerprint,
)
from lethe.audit.records import PER_SAMPLE, PER_SUBJECT, per_sample_upgrade
from lethe.errors import AuditError
from lethe.storage.records import Record

PLAN_FILE = "plan.json"
DEFAULT_K = 8
#: How reference model `index` of a set with seed `seed` is seeded: distinct per model and from the
#: root's own seed; its data order and augmentation follow from it as the root's follow from its seed.
SEED_SCHEME = "seed * 1009 + index + 1"


def reference_seed(seed: int, index: int) -> int:
    """The seed of reference model `index` (SEED_SCHEME)."""
    return int(seed) * 1009 + int(index) + 1


class ReferencePlan(Record):
    """Everything a reference model's training needs (see the module docstring). `groups`: the subject
    group of each training sample in the data set's order (-1: no subject); empty for a per-sample plan
    (version 1)."""

    FORMAT: ClassVar[str] = "lethe-reference-plan/2"
    WHAT: ClassVar[str] = "a lethe reference plan"
    ERROR: ClassVar[type[AuditError]] = AuditError
    UPGRADES: ClassVar[dict[int, Any]] = {1: per_sample_upgrade}

    root_fingerprint: str
    dataset: str
    dataset_fingerprint: str
    k: int
    seed: int
    epochs: int
    recipe: dict[str, Any]
    uri: str
    excluded_ids: list[str] = []  # the root never saw them: out everywhere
    design: Literal["per-subject", "per-sample"] = PER_SUBJECT
    subject_map_fingerprint: str | None = None
    groups: list[int] = []

    def save(self, path: str | Path) -> Path:
        """Write the plan to `path` (a folder gets plan.json)."""
        path = Path(path)
        return self.write(path / PLAN_FILE if path.suffix != ".json" else path)

    @classmethod
    def load(cls, path: str | Path) -> ReferencePlan:
        path = Path(path)
        return cls.read(path / PLAN_FILE if path.is_dir() else path)

    def splits(self) -> tuple[Any, Any]:
        """The recipe's training and test splits, checked against the fingerprint the plan recorded."""
        from lethe.data import load_dataset

        train, test = load_dataset(self.dataset, "train"), load_dataset(self.dataset, "test")
        if train.fingerprint() != self.dataset_fingerprint:
            raise AuditError(f"data set {self.dataset} changed since the plan was made: its fingerprint is "
                             f"{train.fingerprint()[:12]}, not {self.dataset_fingerprint[:12]}")
        return train, test

    def group_tensor(self, n: int) -> torch.Tensor | None:
        """The groups as int64 [n]; None for a per-sample plan."""
        if self.design == PER_SAMPLE or not self.groups:
            return None
        if len(self.groups) != n:
            raise AuditError(f"the plan groups {len(self.groups)} samples, the data set has {n}")
        return torch.tensor(self.groups, dtype=torch.int64)

    def membership(self, train: Any) -> torch.Tensor:
        never_in = None
        if self.excluded_ids:
            never_in = torch.zeros(len(train), dtype=torch.bool)
            never_in[train.indices_of(self.excluded_ids)] = True
        return membership_design(self.k, len(train), seed=self.seed, never_in=never_in,
                                 groups=self.group_tensor(len(train)))


def recipe_of(model_dir: str | Path, card: Any, root: str, uri: str,
              recipe: Mapping[str, Any] | str | Path | None) -> dict[str, Any]:
    """The recipe to repeat: `recipe` (checked against everything that records the root's), else the
    model's own train.json (a trained version), else the one stored with its root's references."""

    stored = stored_manifest(uri)
    if recipe is not None:
        chosen = matching_recipe(recipe, root)
        check_same_recipe(chosen, card_recipe(card), f"the card of model {card.fingerprint[:12]}")
        if root == card.fingerprint:
            check_same_recipe(chosen, own_recipe(model_dir, card), f"the train.json of {root[:12]}")
        check_same_recipe(chosen, stored.recipe if stored else None,
                          f"the stored reference set of {root[:12]}")
        return chosen
    chosen = own_recipe(model_dir, card) if root == card.fingerprint else None
    if chosen is None and stored is not None:
        chosen = dict(stored.recipe)
    if chosen is None:
        raise AuditError(f"model {card.fingerprint[:12]} has no training recipe (the train.json of its root "
                         f"version {root[:12]}): {HOW_TO_SUPPLY}")
    return chosen


def plan_references(model_dir: str | Path, *, k: int = DEFAULT_K, seed: int = 0, epochs: int | None = None,
                    recipe: Mapping[str, Any] | str | Path | None = None, exclude_ids: Sequence[str] = (),
                    root_uri: str | None = None, subject_map: str | Path | None = None) -> ReferencePlan:
    """Check everything (recipe, data, exclusions, subjects) and fix the plan; trains nothing.

    The recipe: `recipe_of`. `exclude_ids`: the samples a retrained root was trained without; they
    must match the recipe's record of them (count and sha256). `subject_map`: the map whose subjects
    are drawn whole (default LETHE_SUBJECT_MAP, else the data set's synthetic subjects)."""
    from lethe.data import load_dataset
    from lethe.data import subject_map as subjects_of
    from lethe.models.baseline import excluded_digest
    from lethe.models.checkpoint import read_card

    card = read_card(model_dir)
    root = root_fingerprint(card)
    uri = references_uri(root, root_uri)
    chosen = recipe_of(model_dir, card, root, uri, recipe)
    if k < 2:
        raise AuditError(f"reference models come in sets of at least 2, not {k}")
    train = load_dataset(str(chosen["dataset"]), "train")
    dataset_fp = train.fingerprint()
    recorded = chosen.get("dataset_fingerprint")
    if recorded and recorded != dataset_fp:
        raise AuditError(f"the root version was trained on data set {str(recorded)[:12]} but "
                         f"{chosen['dataset']} is now {dataset_fp[:12]}: its reference models cannot be "
                         "trained on other data")
    if card.num_classes != train.num_classes:
        raise AuditError(f"the model has {card.num_classes} classes but {chosen['dataset']} has "
                         f"{train.num_classes}: the recipe is not this model's")
    excluded = list(dict.fromkeys(exclude_ids))
    if int(chosen.get("excluded") or 0) != len(excluded) or (
            excluded and chosen.get("excluded_sha256") != excluded_digest(excluded)):
        raise AuditError(f"the root version was trained without {int(chosen.get('excluded') or 0)} "
                         f"sample(s) and {len(excluded)} were named: its reference models need exactly the "
                         "samples it was trained without (a retrained version's: those of the requests it "
                         "honours)")
    if excluded:
        train.indices_of(excluded)  # unknown ids are refused before any training
    groups = subject_groups(train.ids, subjects_of(train, subject_map))
    return ReferencePlan(root_fingerprint=root, dataset=str(chosen["dataset"]),
                         dataset_fingerprint=dataset_fp, k=int(k), seed=int(seed),
                         epochs=int(epochs or chosen["epochs"]), recipe=dict(chosen), uri=uri,
                         excluded_ids=excluded, design=PER_SUBJECT,
                         subject_map_fingerprint=groups_fingerprint(train.ids, groups),
                         groups=groups.tolist())


__all__ = ["DEFAULT_K", "NO_GROUP", "PLAN_FILE", "SEED_SCHEME", "ReferencePlan", "plan_references",
           "recipe_of", "reference_seed"]
