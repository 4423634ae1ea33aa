"""Data sets: one `Dataset` row per data set lethe can load, and the registry the code reads.

In the style of torch's `optim_db`: a row carries its loader, its card (classes, channels, image
size, normalisation: what a model trained on it takes), the per-sample metadata columns every
split carries, and what loading needs. `load_dataset` takes the loader from here, `lethe train
--dataset` and `lethe data` their help text, and `tests/unit/test_data_rows.py` loads a tiny split
of every row and checks it against the row's card.

A row with an `argument` is spelled `name:ARGUMENT` (`imagefolder:DIR`, `shards:URI`): the loader
gets what follows the colon. Adding a data set: its loader module and one
`register_dataset(Dataset(...))` entry at the bottom of this file: 2 files. Loaders are given as
`"module:attribute"` references, resolved on first use, so reading the rows imports no torch.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from lethe.data.card import DatasetCard, Normalization, check_column_name
from lethe.errors import DataError

if TYPE_CHECKING:
    from lethe.data.sampleset import SampleSet

#: A callable, or where to find it: "package.module:attribute" (the rows of models use it too).
Ref = Callable[..., Any] | str
_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
#: What a row's name may be: lower-case letters, digits, '_', '.', '-'.
ROW_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def is_ref(ref: object) -> bool:
    return callable(ref) or (isinstance(ref, str) and _REF.match(ref) is not None)


def resolve(ref: Ref) -> Callable[..., Any]:
    """The callable a `Ref` names (a callable is returned as it is), imported on first use."""
    if callable(ref):
        return ref
    module, _, attribute = ref.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class LoadOptions:
    """What a loader gets besides the split."""

    name: str  # as asked for: `digits`, `imagefolder:/data/faces`
    argument: str  # what follows `name:` for a row with an argument, else ""
    card: DatasetCard | None  # the row's card
    data_dir: Path | None  # --data-dir / LETHE_DATA_DIR
    image_size: int | None  # the square size images are resized to, where a loader resizes
    download_root: Path  # where a loader may download files (LETHE_HOME/data)


@dataclass(frozen=True)
class Dataset:
    """One data set. `loader(split, options: LoadOptions) -> SampleSet`; the samples it returns
    match `card` (when the row has one) and carry at least the `metadata` columns."""

    name: str
    summary: str  # a few words for the CLI's help
    loader: Ref
    card: DatasetCard | None = None  # None: the card comes from the data (a folder, published shards)
    metadata: tuple[str, ...] = ()  # per-sample columns every split carries
    argument: str | None = None  # e.g. "DIR": the row is spelled `name:DIR`
    #: What loading needs beyond lethe (files, the internet), in words; None: nothing.
    needs: str | None = None

    def __post_init__(self) -> None:
        if not ROW_NAME.match(self.name):
            raise DataError(f"a data set name is lower-case letters, digits, '_', '.', '-': {self.name!r}")
        if not is_ref(self.loader):
            raise DataError(f"data set {self.name!r}: loader must be a callable or 'module:attribute', "
                            f"not {self.loader!r}")
        object.__setattr__(self, "metadata", tuple(check_column_name(c) for c in self.metadata))

    @property
    def spelling(self) -> str:
        """How a user names it: `digits`, `imagefolder:DIR`."""
        return f"{self.name}:{self.argument}" if self.argument else self.name

    def load(self, split: str, options: LoadOptions) -> SampleSet:
        return resolve(self.loader)(split, options)

    def describe(self) -> str:
        """One phrase for help text."""
        card = f"; {self.card.describe()}" if self.card else ""
        return f"{self.spelling} ({self.summary}{card})"


_ROWS: dict[str, Dataset] = {}
#: name -> Dataset, read-only and live (rows registered later appear in it).
DATASETS: Mapping[str, Dataset] = MappingProxyType(_ROWS)


def register_dataset(row: Dataset) -> Dataset:
    """Add a row; a second row of the same name is refused."""
    if row.name in _ROWS:
        raise DataError(f"data set {row.name!r} is registered already")
    _ROWS[row.name] = row
    return row


def unregister_dataset(name: str) -> None:
    _ROWS.pop(name, None)


def dataset_names() -> list[str]:
    """Every way to name a data set, for messages."""
    return [*(row.spelling for row in _ROWS.values()), "<uri> (a published data set)"]


def find_dataset(name: str) -> tuple[Dataset, str]:
    """The row `name` spells and its argument (`imagefolder:/x` -> the imagefolder row, "/x")."""
    row = _ROWS.get(name)
    if row is not None and row.argument is None:
        return row, ""
    prefix, colon, argument = name.partition(":")
    row = _ROWS.get(prefix)
    if row is None or (row.argument is None) == bool(colon):
        raise DataError(f"unknown dataset {name!r}; expected one of {', '.join(dataset_names())}")
    if not argument:
        raise DataError(f"dataset {name!r} names no location: use {prefix}:<{row.argument}>")
    return row, argument


def dataset_help() -> str:
    """The rows, one phrase each, for `--dataset` help."""
    return ", ".join(row.describe() for row in _ROWS.values())


# --- the rows ------------------------------------------------------------------------------------------
# Normalisations are the mean and std of each train split's pixels scaled to [0, 1].

register_dataset(Dataset(
    name="digits", summary="scikit-learn's bundled 8x8 digits, offline", loader="lethe.data.digits:load",
    card=DatasetCard(10, 1, (8, 8), Normalization((0.3059,), (0.3763,)), tuple(str(d) for d in range(10)))))
register_dataset(Dataset(
    name="fashion-mnist", summary="Zalando's Fashion-MNIST", loader="lethe.data.fashion_mnist:load",
    card=DatasetCard(10, 1, (28, 28), Normalization((0.2860,), (0.3530,)), (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
        "Ankle boot")),
    needs="its IDX files: --data-dir, the Debian package dataset-fashion-mnist, or the internet"))
register_dataset(Dataset(
    name="cifar10", summary="CIFAR-10", loader="lethe.data.cifar:load",
    card=DatasetCard(10, 3, (32, 32), Normalization((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))),
    needs="the extracted cifar-10-python.tar.gz in --data-dir"))
register_dataset(Dataset(
    name="cifar100", summary="CIFAR-100", loader="lethe.data.cifar:load",
    card=DatasetCard(100, 3, (32, 32), Normalization((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))),
    needs="the extracted cifar-100-python.tar.gz in --data-dir"))
register_dataset(Dataset(
    name="cifar20", summary="CIFAR-100's 20 superclasses", loader="lethe.data.cifar:load",
    card=DatasetCard(20, 3, (32, 32), Normalization((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))),
    needs="the extracted cifar-100-python.tar.gz in --data-dir"))
register_dataset(Dataset(
    name="imagefolder", argument="DIR", loader="lethe.data.imagefolder:load",
    summary="your images, DIR/{train,test}/CLASS/IMAGE; per-sample columns from DIR/metadata.csv",
    needs="a folder of images"))
register_dataset(Dataset(
    name="shards", argument="URI", loader="lethe.data.shards:load",
    summary="shards under a path or storage URI, e.g. a published data set with its metadata columns",
    needs="shards written by `lethe data publish` or `write_shards`"))
