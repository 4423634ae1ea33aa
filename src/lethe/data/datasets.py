"""`load_dataset(name, split)`: every data set lethe knows, by name (the rows of `lethe.data.catalog`).

A SampleSet's `name` is the name it was loaded by, so `load_dataset(samples.name, split)` (e.g. from
a model card) loads the same data again.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lethe.config import settings
from lethe.data.catalog import DATASETS, LoadOptions, dataset_names, find_dataset
from lethe.errors import DataError
from lethe.storage import uri_scheme

if TYPE_CHECKING:
    from lethe.data.sampleset import SampleSet

SPLITS = ("train", "test")

__all__ = ["SPLITS", "dataset_location", "dataset_names", "load_dataset"]


def load_dataset(name: str, split: str, *, data_dir: str | Path | None = None,
                 image_size: int | None = None) -> SampleSet:
    """One split of a data set. `data_dir` defaults to LETHE_DATA_DIR; `image_size` is the square
    size images of an `imagefolder:` set are resized to (default 32)."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    name = dataset_location(name)
    if settings().store_only and not _in_object_store(name):
        raise DataError(f"LETHE_STORE_ONLY is set: data sets come only from object storage (a URI such as "
                        f"s3://BUCKET/datasets/NAME, published by `lethe data publish`), not {name!r}")
    row, argument = find_dataset(name)
    if data_dir is None:
        data_dir = settings().data_dir
    options = LoadOptions(name=name, argument=argument, card=row.card,
                          data_dir=Path(data_dir) if data_dir is not None else None, image_size=image_size,
                          download_root=settings().home / "data")
    return row.load(split, options)


def dataset_location(name: str) -> str:
    """`name` with a bare storage URI (`s3://b/datasets/x`) spelled as the `shards:` set it is."""
    prefixed = tuple(f"{row.name}:" for row in DATASETS.values() if row.argument)
    if uri_scheme(name) and not name.startswith(prefixed):
        return f"shards:{name}"
    return name


def _in_object_store(name: str) -> bool:
    return name.startswith("shards:") and uri_scheme(name.partition(":")[2]) not in ("", "file")
