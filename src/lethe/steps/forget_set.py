"""A forget request resolved against the model's own data, for the unlearn and evaluate steps.

The data set is the one `lethe.steps.training_data` names for the model (checked against its card);
the scenario is the one given, else inferred from the forget-set arguments (`infer_scenario`), and its
row splits the training set into the forget and retain sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lethe.data import load_dataset, subject_map
from lethe.forgetting.resolved import ResolvedForgetSet
from lethe.forgetting.scenarios import infer_scenario
from lethe.models import ModelCard
from lethe.steps.training_data import check_model_fits, dataset_for, training_data


def load_forget_set(
    dataset: str | None,
    card: ModelCard,
    *,
    forget_ids: Sequence[str] = (),
    forget_subjects: Sequence[str] = (),
    forget_class: int | None = None,
    scenario: str | None = None,
    subjects_file: str | Path | None = None,
    data_dir: str | None = None,
) -> ResolvedForgetSet:
    """Load train and test of `dataset` (default: LETHE_DATASET_URI, else the model card's), checked
    against the model's card, and split off the forget set as the scenario's row resolves it."""
    name = dataset_for(card, dataset)
    row = infer_scenario(scenario, forget_ids=forget_ids, forget_subjects=forget_subjects,
                         forget_class=forget_class)
    train = training_data(card, name, data_dir=data_dir)
    mapping = subject_map(train, subjects_file) if forget_subjects else None
    split = row.resolve(train, ids=forget_ids, subjects=forget_subjects, subjects_map=mapping,
                        forget_class=forget_class)
    test = load_dataset(name, "test", data_dir=data_dir)
    check_model_fits(card, test)
    return ResolvedForgetSet(name, row.name, train, test, split, forget_class)
