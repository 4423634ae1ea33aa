"""`load_dataset(name, split)`: every data set lethe knows, by name.

A SampleSet's `name` is the name it was loaded by, so `load_dataset(samples.name, split)` (e.g. from
a model card) loads the same data again.
"""

from __future__ import annotations

from pathlib import Path

from lethe.config import settings
from lethe.data.sampleset import SampleSet
from lethe.errors import DataError
from lethe.storage import uri_scheme

SPLITS = ("train", "test")
BUILTIN = ("digits", "fashion-mnist", "cifar10", "cifar100", "cifar20")
PREFIXED = ("imagefolder:", "shards:")


def dataset_names() -> list[str]:
    return [*BUILTIN, "imagefolder:<dir>", "shards:<uri>", "<uri> (a published data set)"]


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
    if data_dir is None:
        data_dir = settings().data_dir
    if name == "digits":
        from lethe.data.digits import load_digits_split

        return load_digits_split(split)
    if name == "fashion-mnist":
        from lethe.data.fashion_mnist import load_fashion_mnist

        return load_fashion_mnist(split, data_dir, download_root=settings().home / "data")
    if name in ("cifar10", "cifar100", "cifar20"):
        from lethe.data.cifar import load_cifar

        return load_cifar(name, split, data_dir)
    if name.startswith("imagefolder:"):
        from lethe.data.imagefolder import DEFAULT_IMAGE_SIZE, load_image_folder

        return load_image_folder(_argument(name), split, image_size or DEFAULT_IMAGE_SIZE)
    if name.startswith("shards:"):
        from lethe.data.shards import load_shards

        return load_shards(_argument(name), split)
    raise DataError(f"unknown dataset {name!r}; expected one of {', '.join(dataset_names())}")


def dataset_location(name: str) -> str:
    """`name` with a bare storage URI (`s3://b/datasets/x`) spelled as the `shards:` set it is."""
    if uri_scheme(name) and not name.startswith(PREFIXED):
        return f"shards:{name}"
    return name


def _in_object_store(name: str) -> bool:
    return name.startswith("shards:") and uri_scheme(name.partition(":")[2]) not in ("", "file")


def _argument(name: str) -> str:
    prefix, _, argument = name.partition(":")
    if not argument:
        raise DataError(f"dataset {name!r} names no location: use {prefix}:<path>")
    return argument
