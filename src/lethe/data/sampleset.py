"""One split of one data set: stable string ids, uint8 images kept in memory, labels, and per-sample
metadata columns.

Images stay uint8 [N, C, H, W]; they become normalised floats one batch at a time, so a pass
over the data does no per-sample work (no PIL, no Python loop over samples).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch

from lethe.data.card import DatasetCard, Normalization, check_column_name
from lethe.errors import DataError, UnknownSamplesError

__all__ = ["Batches", "Normalization", "SampleSet", "concat"]

#: How many unknown ids an error message names before it says "and N more".
NAMED_IN_ERRORS = 5


class Batches:
    """A re-iterable sequence of batches with `len()` and `.batch_size` (what the engine records).

    Each iteration yields `(x, y)` (or `x` without labels); x is float32 normalised. With
    `shuffle`, the order is a permutation drawn from `seed`, the same on every iteration.
    """

    def __init__(self, samples: SampleSet, batch_size: int, *, shuffle: bool, seed: int,
                 with_labels: bool, drop_last: bool, device: str | torch.device | None) -> None:
        if batch_size < 1:
            raise DataError(f"batch size must be at least 1, got {batch_size}")
        if with_labels and samples.labels is None:
            raise DataError(f"{samples.name}/{samples.split} has no labels")
        self.samples = samples
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.with_labels = with_labels
        self.drop_last = drop_last
        self.device = torch.device(device) if device is not None else None

    def __len__(self) -> int:
        n = len(self.samples)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self) -> torch.Tensor | None:
        if not self.shuffle:
            return None
        generator = torch.Generator().manual_seed(self.seed)
        return torch.randperm(len(self.samples), generator=generator)

    def __iter__(self) -> Iterator[Any]:
        order = self._order()
        inputs, labels = self.samples.inputs, self.samples.labels
        for k in range(len(self)):
            start, stop = k * self.batch_size, min((k + 1) * self.batch_size, len(self.samples))
            if order is None:
                x = inputs[start:stop]
                y = labels[start:stop] if labels is not None else None
            else:
                index = order[start:stop]
                x = inputs[index]
                y = labels[index] if labels is not None else None
            if self.device is not None:  # move uint8 (4x smaller), normalise on the device
                x = x.to(self.device, non_blocking=True)
                y = y.to(self.device, non_blocking=True) if y is not None else None
            x = self.samples.normalization.apply(x)
            yield (x, y) if self.with_labels else x


class SampleSet:
    """One split of one data set. See docs/architecture.md, "Data".

    `ids[i]`, `inputs[i]`, `labels[i]` and `metadata[column][i]` describe the same sample. Ids are
    unique. `metadata` holds per-sample string columns a data set may carry (where a sample came
    from, when it was collected), each as long as the set; `ids_where(column, value)` selects by
    them. They travel through `subset`, `concat` and published shards, but not into
    `fingerprint()`: the fingerprint names what a model learns from (ids, images, labels), models
    record it, and a column added later must not disown them. Published shards are sha256-checked,
    metadata included.
    """

    def __init__(
        self,
        *,
        name: str,
        split: str,
        ids: Sequence[str],
        inputs: torch.Tensor,
        labels: torch.Tensor | None,
        num_classes: int,
        normalization: Normalization,
        classes: Sequence[str] | None = None,
        metadata: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        ids = [str(i) for i in ids]
        if inputs.dtype != torch.uint8 or inputs.dim() != 4:
            raise DataError(f"{name}/{split}: inputs must be uint8 [N, C, H, W], got "
                            f"{inputs.dtype} {tuple(inputs.shape)}")
        if len(ids) != inputs.shape[0]:
            raise DataError(f"{name}/{split}: {len(ids)} ids for {inputs.shape[0]} inputs")
        if labels is not None:
            labels = labels.to(torch.int64)
            if labels.shape != (len(ids),):
                raise DataError(f"{name}/{split}: {tuple(labels.shape)} labels for {len(ids)} inputs")
            if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
                raise DataError(f"{name}/{split}: labels outside 0..{num_classes - 1}")
        if inputs.shape[1] != len(normalization.mean):
            raise DataError(f"{name}/{split}: {inputs.shape[1]} channels but normalization for "
                            f"{len(normalization.mean)}")
        if classes is not None and len(classes) != num_classes:
            raise DataError(f"{name}/{split}: {len(classes)} class names for {num_classes} classes")
        self.name = name
        self.split = split
        self.ids = ids
        self.inputs = inputs
        self.labels = labels
        self.num_classes = int(num_classes)
        self.normalization = normalization
        self.classes = tuple(classes) if classes is not None else None
        self.metadata = _metadata_columns(f"{name}/{split}", metadata, len(ids))
        self._index: dict[str, int] | None = None
        self._fingerprint: str | None = None
        if len(self.index) != len(ids):
            duplicates = _first_duplicates(ids)
            raise DataError(f"{name}/{split}: duplicate sample ids, e.g. {', '.join(duplicates)}")

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (f"SampleSet({self.name}/{self.split}, n={len(self)}, shape={tuple(self.inputs.shape[1:])}, "
                f"classes={self.num_classes})")

    @property
    def in_channels(self) -> int:
        return int(self.inputs.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.inputs.shape[2]), int(self.inputs.shape[3])

    @property
    def card(self) -> DatasetCard:
        """Classes, channels, image size, normalisation: what a model trained on these samples takes."""
        return DatasetCard(self.num_classes, self.in_channels, self.image_size, self.normalization,
                           self.classes)

    @property
    def index(self) -> dict[str, int]:
        """id → position, built once."""
        if self._index is None:
            self._index = {sample_id: i for i, sample_id in enumerate(self.ids)}
        return self._index

    def indices_of(self, ids: Iterable[str]) -> torch.Tensor:
        """Positions of `ids` (in the given order); unknown ids raise UnknownSamplesError."""
        wanted = list(ids)
        missing = [position for position, i in enumerate(wanted, start=1) if i not in self.index]
        if missing:
            # Positions, never values: ids can come from a file (`@FILE`) holding anything, and
            # sample ids stay out of messages and logs.
            raise UnknownSamplesError(
                f"{len(missing)} of {len(wanted)} sample id(s) not in {self.name}/{self.split} (the ids "
                f"given at position {_name_a_few([str(p) for p in missing], quote=False)})")
        return torch.tensor([self.index[i] for i in wanted], dtype=torch.int64)

    def subset(self, indices: torch.Tensor | Sequence[int]) -> SampleSet:
        """The samples at `indices` (positions, or a boolean mask), ids and all."""
        index = torch.as_tensor(indices)
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        index = index.to(torch.int64).reshape(-1)
        positions = index.tolist()
        return SampleSet(
            name=self.name,
            split=self.split,
            ids=[self.ids[i] for i in positions],
            inputs=self.inputs[index],
            labels=self.labels[index] if self.labels is not None else None,
            num_classes=self.num_classes,
            normalization=self.normalization,
            classes=self.classes,
            metadata={column: [values[i] for i in positions] for column, values in self.metadata.items()},
        )

    def metadata_column(self, column: str) -> list[str]:
        """The values of one metadata column, in sample order; an unknown column is a DataError."""
        if column not in self.metadata:
            have = ", ".join(self.metadata) or "none"
            raise DataError(f"{self.name}/{self.split} has no metadata column {column!r} (its columns: "
                            f"{have})")
        return self.metadata[column]

    def ids_where(self, column: str, value: str) -> list[str]:
        """The ids of the samples whose metadata `column` equals `value`, in sample order (empty when
        none does); an unknown column is a DataError. E.g. `ids_where("source", "clinic-b")`."""
        return [i for i, v in zip(self.ids, self.metadata_column(column), strict=True) if v == value]

    def metadata_values(self, column: str) -> list[str]:
        """The distinct values of a metadata column, sorted."""
        return sorted(set(self.metadata_column(column)))

    def with_metadata(self, columns: Mapping[str, Sequence[str]]) -> SampleSet:
        """The same samples with `columns` added (or replaced); the fingerprint stays the same."""
        return SampleSet(name=self.name, split=self.split, ids=self.ids, inputs=self.inputs,
                         labels=self.labels, num_classes=self.num_classes, normalization=self.normalization,
                         classes=self.classes, metadata={**self.metadata, **columns})

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0, with_labels: bool = True,
                drop_last: bool = False, device: str | torch.device | None = None) -> Batches:
        return Batches(self, batch_size, shuffle=shuffle, seed=seed, with_labels=with_labels,
                       drop_last=drop_last, device=device)

    def fingerprint(self) -> str:
        """Hex sha256 of the ids, the inputs (shape and bytes) and the labels; cached. Metadata is not
        in it (see the class's docstring)."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            digest.update("\n".join(self.ids).encode())
            digest.update(repr(tuple(self.inputs.shape)).encode())
            digest.update(self.inputs.contiguous().numpy().tobytes())
            if self.labels is not None:
                digest.update(self.labels.contiguous().numpy().tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (no sample ids)."""
        counts = (torch.bincount(self.labels, minlength=self.num_classes).tolist()
                  if self.labels is not None else None)
        summary = {
            "name": self.name,
            "split": self.split,
            "size": len(self),
            "num_classes": self.num_classes,
            "classes": list(self.classes) if self.classes else None,
            "in_channels": self.in_channels,
            "image_size": list(self.image_size),
            "normalization": self.normalization.to_dict(),
            "class_counts": counts,
            "fingerprint": self.fingerprint(),
        }
        if self.metadata:  # column -> how many distinct values
            summary["metadata"] = {column: len(set(values)) for column, values in self.metadata.items()}
        return summary


def concat(parts: Sequence[SampleSet]) -> SampleSet:
    """One SampleSet from several parts of the same split (e.g. shards)."""
    if not parts:
        raise DataError("nothing to concatenate")
    first = parts[0]
    for part in parts[1:]:
        if part.inputs.shape[1:] != first.inputs.shape[1:]:
            raise DataError(f"{first.name}: parts differ in image shape "
                            f"{tuple(first.inputs.shape[1:])} vs {tuple(part.inputs.shape[1:])}")
        if (part.labels is None) != (first.labels is None):
            raise DataError(f"{first.name}: some parts have labels and others do not")
        if part.metadata.keys() != first.metadata.keys():
            theirs = [", ".join(p.metadata) or "none" for p in (first, part)]
            raise DataError(f"{first.name}: parts carry different metadata columns ({theirs[0]} vs "
                            f"{theirs[1]})")
    return SampleSet(
        name=first.name,
        split=first.split,
        ids=[i for part in parts for i in part.ids],
        inputs=torch.cat([part.inputs for part in parts]),
        labels=torch.cat([part.labels for part in parts]) if first.labels is not None else None,
        num_classes=max(part.num_classes for part in parts),
        normalization=first.normalization,
        classes=first.classes,
        metadata={column: [value for part in parts for value in part.metadata[column]]
                  for column in first.metadata},
    )


def _metadata_columns(where: str, metadata: Mapping[str, Sequence[str]] | None,
                      size: int) -> dict[str, list[str]]:
    """Checked copies of the columns: named like identifiers, strings only, one value per sample."""
    columns: dict[str, list[str]] = {}
    for column, values in (metadata or {}).items():
        check_column_name(column)
        if isinstance(values, str):
            raise DataError(f"{where}: metadata column {column!r} must be a sequence of strings, not one "
                            "string")
        copied = list(values)
        if len(copied) != size:
            raise DataError(f"{where}: metadata column {column!r} has {len(copied)} values for {size} "
                            "samples")
        if not all(isinstance(v, str) for v in copied):
            raise DataError(f"{where}: metadata column {column!r} holds values that are not strings")
        columns[column] = [str(v) for v in copied]  # numpy's str_ becomes a plain str
    return columns


def _name_a_few(values: Sequence[str], *, quote: bool = True) -> str:
    named = ", ".join(repr(v) if quote else v for v in values[:NAMED_IN_ERRORS])
    more = len(values) - NAMED_IN_ERRORS
    return named + (f" and {more} more" if more > 0 else "")


def _first_duplicates(ids: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    duplicates: dict[str, None] = {}  # ordered set
    for sample_id in ids:
        if sample_id in seen:
            duplicates[repr(sample_id)] = None
            if len(duplicates) == NAMED_IN_ERRORS:
                break
        seen.add(sample_id)
    return list(duplicates)
