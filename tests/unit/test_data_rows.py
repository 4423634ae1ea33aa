"""The contract every data set row keeps: it loads a tiny split (from small files written here where
it reads files, skipped with the row's own reason where it needs what the test cannot write), the
samples match the row's card, carry its metadata columns, and load the same twice."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lethe.data import DATASETS, Dataset, SampleSet, load_dataset, write_shards
from lethe.data.catalog import dataset_help, find_dataset
from lethe.errors import DataError
from tests.unit.test_data_loaders import _png, cifar_files, fashion_files

ROWS = list(DATASETS.values())

#: name -> writes a tiny copy under the folder it gets and returns (the name to load, the data dir).
#: Rows without one load as they are (`needs` is None), or are skipped naming what they need.
Tiny = Callable[[Path, pytest.MonkeyPatch], tuple[str, Path | None]]


def _fashion(folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path | None]:
    fashion_files(folder)
    return "fashion-mnist", folder


def _cifar(name: str) -> Tiny:
    def write(folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path | None]:
        cifar_files(folder, monkeypatch)
        return name, folder
    return write


def _image_folder(folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path | None]:
    for split, count in (("train", 3), ("test", 2)):
        for k in range(count):
            _png(folder / split / ("cat" if k % 2 else "dog") / f"{k}.png", (10, 10), (k * 40, 0, 0))
    return f"imagefolder:{folder}", None


def _shards(folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path | None]:
    for split in ("train", "test"):
        write_shards(load_dataset("digits", split).subset(torch.arange(12)), folder, shard_size=5)
    return f"shards:{folder}", None


TINY: dict[str, Tiny] = {
    "fashion-mnist": _fashion, "cifar10": _cifar("cifar10"), "cifar100": _cifar("cifar100"),
    "cifar20": _cifar("cifar20"), "imagefolder": _image_folder, "shards": _shards,
}


def _load_both(row: Dataset, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> tuple[str, SampleSet, SampleSet]:
    monkeypatch.delenv("LETHE_DATA_DIR", raising=False)
    monkeypatch.delenv("LETHE_STORE_ONLY", raising=False)
    monkeypatch.setenv("LETHE_HOME", str(tmp_path / "home"))  # nothing is downloaded into the real one
    if row.name in TINY:
        name, data_dir = TINY[row.name](tmp_path / "data", monkeypatch)
    elif row.needs is None and row.argument is None:
        name, data_dir = row.name, None
    else:
        pytest.skip(f"{row.name} needs {row.needs or 'a location'}; no tiny copy of it is written here")
    return name, *(load_dataset(name, split, data_dir=data_dir) for split in ("train", "test"))


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
def test_every_row_loads_samples_that_keep_its_card(row: Dataset, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    name, train, test = _load_both(row, tmp_path, monkeypatch)
    assert find_dataset(name)[0] is row
    for split, samples in (("train", train), ("test", test)):
        assert samples.name == name and samples.split == split and len(samples) > 0
        assert samples.labels is not None and int(samples.labels.max()) < samples.num_classes
        assert set(row.metadata) <= set(samples.metadata)
        if row.card is not None:
            assert row.card.differences(samples.card) == []
        json.dumps(samples.describe())  # `lethe data info --json`
    assert set(train.ids).isdisjoint(test.ids)
    assert train.card == test.card
    again = load_dataset(name, "train", data_dir=tmp_path / "data" if row.name in TINY else None)
    assert again.ids == train.ids and again.fingerprint() == train.fingerprint()


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
def test_every_row_is_in_the_help_and_spelled_as_it_loads(row: Dataset) -> None:
    assert row.spelling in dataset_help() and row.summary in dataset_help()
    if row.argument:
        with pytest.raises(DataError, match="names no location"):
            load_dataset(f"{row.name}:", "train")
        with pytest.raises(DataError, match=f"unknown dataset '{row.name}'"):
            load_dataset(row.name, "train")  # the location is not optional
    else:
        with pytest.raises(DataError, match=f"unknown dataset '{row.name}:x'"):
            load_dataset(f"{row.name}:x", "train")


def test_bad_rows_are_refused() -> None:
    from lethe.data import register_dataset

    with pytest.raises(DataError, match="registered already"):
        register_dataset(Dataset(name="digits", summary="again", loader="lethe.data.digits:load"))
    with pytest.raises(DataError, match="loader must be a callable or 'module:attribute'"):
        Dataset(name="odd", summary="", loader="lethe.data.digits.load")
    with pytest.raises(DataError, match="metadata column"):
        Dataset(name="odd", summary="", loader="lethe.data.digits:load", metadata=("a b",))
