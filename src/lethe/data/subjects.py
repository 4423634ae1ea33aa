"""Subjects (the people who own samples): subject id → sample ids.

From a CSV or Parquet file with columns `subject_id, sample_id`, or, for the built-in sets, a
deterministic synthetic mapping so that demos and benchmarks can forget "a person".
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from lethe.data.sampleset import SampleSet, _name_a_few
from lethe.errors import DataError, UnknownSamplesError

SAMPLES_PER_SUBJECT = 10
COLUMNS = ("subject_id", "sample_id")


def synthetic_subjects(ids: Sequence[str], per_subject: int = SAMPLES_PER_SUBJECT) -> dict[str, list[str]]:
    """Groups of `per_subject` samples, ordered by sha256 of their id: a scatter that depends on
    nothing but the ids (no random generator whose stream could change between versions)."""
    if per_subject < 1:
        raise DataError(f"samples per subject must be at least 1, got {per_subject}")
    position = {sample_id: i for i, sample_id in enumerate(ids)}
    order = sorted(position, key=lambda sample_id: hashlib.sha256(sample_id.encode()).digest())
    count = -(-len(order) // per_subject)
    width = max(5, len(str(max(count - 1, 0))))
    return {f"subject-{k:0{width}d}": sorted(order[k * per_subject:(k + 1) * per_subject], key=position.get)
            for k in range(count)}


def read_subject_file(path: str | Path) -> dict[str, list[str]]:
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"subject map {path} does not exist")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas/pyarrow raise many parser error types
        raise DataError(f"cannot read subject map {path}: {exc}") from exc
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"subject map {path} lacks column(s) {', '.join(missing)}; "
                        f"expected {', '.join(COLUMNS)}")
    mapping: dict[str, list[str]] = {}
    for subject, sample in zip(frame["subject_id"].astype(str), frame["sample_id"].astype(str), strict=True):
        if not subject or not sample:
            raise DataError(f"subject map {path} has an empty subject_id or sample_id")
        samples = mapping.setdefault(subject, [])
        if sample not in samples:
            samples.append(sample)
    return mapping


def subject_map(train: SampleSet, path: str | Path | None = None) -> dict[str, list[str]]:
    """The subjects of `train`: from a file (every sample id must be in `train`), else synthetic."""
    if path is None:
        return synthetic_subjects(train.ids)
    mapping = read_subject_file(path)
    unknown = [s for samples in mapping.values() for s in samples if s not in train.index]
    if unknown:
        raise UnknownSamplesError(f"subject map {path} names {len(unknown)} sample id(s) not in "
                                  f"{train.name}/{train.split}: {_name_a_few(unknown)}")
    return mapping
