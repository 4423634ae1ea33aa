"""Data sets with stable sample ids and per-sample metadata, subjects, and forget-set resolution.

See docs/architecture.md, "Data". Images are uint8 tensors in memory; `SampleSet.batches()` turns
them into normalised floats one batch at a time. One `Dataset` row per data set lives in
`lethe.data.catalog`. The names below load on first use: reading the rows (the CLI's help) does not
import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lethe.data.card import DatasetCard, Normalization
    from lethe.data.catalog import (
        DATASETS,
        Dataset,
        LoadOptions,
        dataset_names,
        register_dataset,
        unregister_dataset,
    )
    from lethe.data.datasets import SPLITS, dataset_location, load_dataset
    from lethe.data.forget import ForgetSplit, forget_mask, resolve_forget_set
    from lethe.data.sampleset import Batches, SampleSet, concat
    from lethe.data.shards import iter_shards, publish_dataset, write_shards
    from lethe.data.subjects import (
        SAMPLES_PER_SUBJECT,
        publish_subject_map,
        read_subject_file,
        subject_map,
        synthetic_subjects,
    )

_HOME = {
    "DatasetCard": "lethe.data.card",
    "Normalization": "lethe.data.card",
    **dict.fromkeys(("DATASETS", "Dataset", "LoadOptions", "dataset_names", "register_dataset",
                     "unregister_dataset"), "lethe.data.catalog"),
    **dict.fromkeys(("SPLITS", "dataset_location", "load_dataset"), "lethe.data.datasets"),
    **dict.fromkeys(("ForgetSplit", "forget_mask", "resolve_forget_set"), "lethe.data.forget"),
    **dict.fromkeys(("Batches", "SampleSet", "concat"), "lethe.data.sampleset"),
    **dict.fromkeys(("iter_shards", "publish_dataset", "write_shards"), "lethe.data.shards"),
    **dict.fromkeys(("SAMPLES_PER_SUBJECT", "publish_subject_map", "read_subject_file", "subject_map",
                     "synthetic_subjects"), "lethe.data.subjects"),
}

__all__ = [
    "Batches",
    "DATASETS",
    "Dataset",
    "DatasetCard",
    "ForgetSplit",
    "LoadOptions",
    "Normalization",
    "SAMPLES_PER_SUBJECT",
    "SPLITS",
    "SampleSet",
    "concat",
    "dataset_location",
    "dataset_names",
    "forget_mask",
    "iter_shards",
    "load_dataset",
    "publish_dataset",
    "publish_subject_map",
    "read_subject_file",
    "register_dataset",
    "resolve_forget_set",
    "subject_map",
    "synthetic_subjects",
    "unregister_dataset",
    "write_shards",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
