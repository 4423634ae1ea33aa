"""Which data a model meets: its own, and nothing else.

Every step that reads a model's training data (collect, prepare, importances, unlearn, evaluate)
names it here: the data set given, else LETHE_DATASET_URI (a published copy in object storage), else
the model card's. Whatever the name, the data must be the model's: the card's train fingerprint,
image size, channels and classes are checked before any work (or any write) starts. A fingerprint
covers ids, images and labels, so a model trained on `fashion-mnist` accepts the copy `lethe data
publish` wrote (same ids, same bytes), and refuses any other data set with the same shape.
"""

from __future__ import annotations

from lethe.config import settings
from lethe.data import SampleSet, dataset_location, load_dataset
from lethe.errors import ConfigError, ModelError
from lethe.models import ModelCard


def dataset_for(card: ModelCard, dataset: str | None = None) -> str:
    """The data set to read for `card`'s model: `dataset`, else LETHE_DATASET_URI, else the card's."""
    name = dataset or settings().dataset_uri or card.dataset
    if not name:
        raise ConfigError("no data set given, LETHE_DATASET_URI is not set and the model card names none")
    return dataset_location(name)


def check_model_fits(card: ModelCard, samples: SampleSet, *, what: str = "model") -> None:
    """Refuse data the model was not trained on: other classes, channels or image size, or (for the
    train split, when the card records one) another fingerprint. Cheap checks first."""
    if card.num_classes != samples.num_classes:
        raise ModelError(f"the {what} has {card.num_classes} classes but data set {samples.name} has "
                         f"{samples.num_classes}")
    if card.in_channels != samples.in_channels:
        raise ModelError(f"the {what} takes {card.in_channels}-channel images but data set {samples.name} "
                         f"has {samples.in_channels} channels")
    if card.image_size is not None and tuple(card.image_size) != samples.image_size:
        size = "x".join(str(v) for v in card.image_size)
        raise ModelError(f"the {what} takes {size} images but data set {samples.name} has "
                         f"{samples.image_size[0]}x{samples.image_size[1]}: it is not the model's data")
    if card.classes and samples.classes and list(card.classes) != list(samples.classes):
        raise ModelError(f"the {what}'s classes differ from those of data set {samples.name}")
    if (samples.split == "train" and card.dataset_fingerprint
            and samples.fingerprint() != card.dataset_fingerprint):
        raise ModelError(f"data set {samples.name} is not the one the {what} was trained on (fingerprint "
                         f"{samples.fingerprint()[:12]}..., the model card records "
                         f"{card.dataset_fingerprint[:12]}...)")


def training_data(card: ModelCard, dataset: str | None = None, *, data_dir: str | None = None,
                  what: str = "model") -> SampleSet:
    """The model's train split (see `dataset_for`), checked against its card."""
    train = load_dataset(dataset_for(card, dataset), "train", data_dir=data_dir)
    check_model_fits(card, train, what=what)
    return train


__all__ = ["check_model_fits", "dataset_for", "training_data"]
