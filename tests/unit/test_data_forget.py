"""Subjects and forget-set resolution."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from lethe.data import SampleSet, resolve_forget_set, subject_map, synthetic_subjects
from lethe.errors import DataError, EmptyForgetSetError, UnknownSamplesError


def test_synthetic_subjects_partition_the_train_set(digits_train: SampleSet) -> None:
    mapping = subject_map(digits_train)
    owned = [s for samples in mapping.values() for s in samples]
    assert sorted(owned) == sorted(digits_train.ids)  # every sample owned exactly once
    sizes = Counter(len(samples) for samples in mapping.values())
    assert set(sizes) <= {10, len(digits_train) % 10} and sizes[10] == len(digits_train) // 10
    assert all(name.startswith("subject-") and len(name) == len("subject-00000") for name in mapping)
    assert subject_map(digits_train) == mapping  # deterministic
    # scattered over the data set, not consecutive runs of samples
    first = digits_train.indices_of(mapping["subject-00000"])
    assert int(first.max() - first.min()) > 100


def test_synthetic_subjects_depend_only_on_the_ids() -> None:
    ids = [f"d/train/{i}" for i in range(95)]
    mapping = synthetic_subjects(ids)
    reordered = synthetic_subjects(list(reversed(ids)))  # same groups; members listed in input order
    assert {k: set(v) for k, v in mapping.items()} == {k: set(v) for k, v in reordered.items()}
    assert len(mapping) == 10 and len(mapping["subject-00009"]) == 5


def test_resolve_ids_and_subjects_duplicates_once(digits_train: SampleSet) -> None:
    mapping = subject_map(digits_train)
    subject_ids = mapping["subject-00042"]
    ids = ["digits/train/5", "digits/train/5", subject_ids[0]]
    split = resolve_forget_set(digits_train, ids=ids, subjects=["subject-00042", "subject-00042"])
    expected = set(subject_ids) | {"digits/train/5"}
    assert set(split.forget.ids) == expected and len(split.forget) == len(expected)
    assert len(split.retain) == len(digits_train) - len(expected)
    assert set(split.retain.ids).isdisjoint(split.forget.ids)
    # both keep the train set's order, and their inputs travel with their ids
    positions = digits_train.indices_of(split.forget.ids)
    assert positions.tolist() == sorted(positions.tolist())
    assert torch.equal(split.forget.inputs, digits_train.inputs[positions])


def test_resolve_forget_class(digits_train: SampleSet) -> None:
    split = resolve_forget_set(digits_train, forget_class=3)
    assert bool((split.forget.labels == 3).all()) and not bool((split.retain.labels == 3).any())
    assert len(split.forget) == int((digits_train.labels == 3).sum())
    with pytest.raises(DataError, match="class 10"):
        resolve_forget_set(digits_train, forget_class=10)


def test_unknown_ids_named(digits_train: SampleSet) -> None:
    with pytest.raises(UnknownSamplesError, match="1 of 2 sample id.*at position 2") as info:
        resolve_forget_set(digits_train, ids=["digits/train/1", "digits/train/99999"])
    assert "99999" not in str(info.value)  # no id in a message: it may come from a file


def test_unknown_subject_refused_without_naming_it(digits_train: SampleSet) -> None:
    with pytest.raises(UnknownSamplesError, match="1 of 2 subject") as info:
        resolve_forget_set(digits_train, subjects=["subject-00001", "alice@example.com"])
    assert "alice" not in str(info.value)  # subject ids are personal data


def test_empty_and_total_requests_refused(digits_train: SampleSet) -> None:
    with pytest.raises(EmptyForgetSetError):
        resolve_forget_set(digits_train)
    with pytest.raises(EmptyForgetSetError):
        resolve_forget_set(digits_train, subjects=["ghost"], subjects_map={"ghost": []})
    with pytest.raises(DataError, match="nothing would remain"):
        resolve_forget_set(digits_train, ids=digits_train.ids)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_subject_map_from_file(tmp_path: Path, digits_train: SampleSet, suffix: str) -> None:
    import pandas as pd

    samples = ["digits/train/1", "digits/train/2", "digits/train/3", "digits/train/1"]
    frame = pd.DataFrame({"subject_id": ["alice", "alice", "bob", "alice"], "sample_id": samples})
    path = tmp_path / f"subjects{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    mapping = subject_map(digits_train, path)
    assert mapping == {"alice": ["digits/train/1", "digits/train/2"], "bob": ["digits/train/3"]}
    split = resolve_forget_set(digits_train, subjects=["alice"], subjects_map=mapping)
    assert split.forget.ids == ["digits/train/1", "digits/train/2"]


def test_bad_subject_files(tmp_path: Path, digits_train: SampleSet) -> None:
    with pytest.raises(DataError, match="does not exist"):
        subject_map(digits_train, tmp_path / "missing.csv")
    wrong_columns = tmp_path / "wrong.csv"
    wrong_columns.write_text("person,sample\nalice,digits/train/1\n")
    with pytest.raises(DataError, match="subject_id"):
        subject_map(digits_train, wrong_columns)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("subject_id,sample_id\nalice,fashion-mnist/train/1\n")
    with pytest.raises(UnknownSamplesError, match="names 1 sample id") as info:
        subject_map(digits_train, unknown)
    assert "fashion-mnist/train/1" not in str(info.value)
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="cannot read subject map"):
        subject_map(digits_train, corrupt)
