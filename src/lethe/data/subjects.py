"""Subjects (the people who own samples): subject id → sample ids.

From a CSV or Parquet file with columns `subject_id, sample_id`, or, for the built-in sets, a
deterministic synthetic mapping so that demos and benchmarks can forget "a person". A map keeps its
ids as written (a request filed under the legacy hash scheme is matched through them); every lookup
goes through the normal form (`lethe.subject_id.normalize_subject`), so "ZOË@X.ORG" and "zoë@x.org"
are one subject, and their samples one set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from lethe.data.sampleset import SampleSet
from lethe.errors import DataError, UnknownSamplesError
from lethe.subject_id import normalize_subject

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


def _subject_map_bytes(location: str) -> bytes:
    """The map's bytes, read into memory only (the raw map is personal data: no copy on disk).

    From object storage they are checked against their sha256 sidecar (`lethe data publish-subjects`
    writes it); a local file is refused under LETHE_STORE_ONLY."""
    from lethe.config import settings
    from lethe.errors import IntegrityError, StorageError
    from lethe.storage import ArtifactNotFoundError, get_bytes, uri_scheme

    if uri_scheme(location) not in ("", "file"):
        try:
            return get_bytes(location)
        except ArtifactNotFoundError as exc:
            raise DataError(f"subject map {location} does not exist") from exc
        except IntegrityError as exc:
            raise IntegrityError(f"subject map: {exc} (publish maps with `lethe data publish-subjects`, "
                                 "which records their sha256)") from exc
        except StorageError as exc:
            raise DataError(f"cannot read subject map {location}: {exc}") from exc
    if settings().store_only:
        raise DataError(f"LETHE_STORE_ONLY is set: the subject map must come from object storage "
                        f"(s3://...), not the local file {location}")
    path = Path(location.removeprefix("file://"))
    if not path.is_file():
        raise DataError(f"subject map {location} does not exist")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read subject map {location}: {exc.strerror or exc}") from exc


def read_subject_file(path: str | Path) -> dict[str, list[str]]:
    """subject id -> sample ids, from a CSV or Parquet map: a local file or a storage URI (`s3://`)."""
    import io

    import pandas as pd

    location = str(path)
    raw = io.BytesIO(_subject_map_bytes(location))
    try:
        if location.lower().endswith((".parquet", ".pq")):
            frame = pd.read_parquet(raw)
        else:
            frame = pd.read_csv(raw, dtype=str, keep_default_na=False)
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
    """The subjects of `train`: from a map (a file or a storage URI; default LETHE_SUBJECT_MAP; every
    sample id must be in `train`), else synthetic."""
    if path is None:
        from lethe.config import settings

        path = settings().subject_map
    if path is None:
        return synthetic_subjects(train.ids)
    mapping = read_subject_file(path)
    unknown = [s for samples in mapping.values() for s in samples if s not in train.index]
    if unknown:
        # The map's content is personal data: say how many, never which.
        raise UnknownSamplesError(f"subject map {path} names {len(unknown)} sample id(s) not in "
                                  f"{train.name}/{train.split}")
    return mapping


def by_normal_form(mapping: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """`mapping` keyed by each subject's normal form; ids that name one person merge their samples."""
    merged: dict[str, list[str]] = {}
    for subject, samples in mapping.items():
        key = normalize_subject(subject)
        merged[key] = list(dict.fromkeys([*merged.get(key, ()), *samples]))
    return merged


def samples_of(mapping: Mapping[str, Sequence[str]], subjects: Sequence[str]) -> tuple[list[str], int]:
    """The sample ids of `subjects` (looked up by normal form) and how many subjects are unknown."""
    normal = by_normal_form(mapping)
    keys = [normalize_subject(s) for s in subjects]
    owned = [sample for key in keys if key in normal for sample in normal[key]]
    return list(dict.fromkeys(owned)), sum(key not in normal for key in keys)


def publish_subject_map(path: str | Path, uri: str) -> int:
    """Store the map at `path` under `uri` with its sha256 sidecar, after checking it reads; the
    same call updates a published map. Returns the number of subjects."""
    from lethe.errors import StorageError
    from lethe.storage import put_file, uri_scheme

    if uri_scheme(uri) in ("", "file"):
        raise DataError(f"publish the subject map to object storage (s3://...), not {uri}")
    if str(path).lower().endswith((".parquet", ".pq")) != uri.lower().endswith((".parquet", ".pq")):
        raise DataError(f"{uri} and {path} differ in format: the name's suffix (.csv, .parquet) says how "
                        "it is read")
    subjects = len(read_subject_file(path))
    try:
        put_file(path, uri)
    except StorageError as exc:
        raise DataError(f"cannot publish the subject map to {uri}: {exc}") from exc
    return subjects
