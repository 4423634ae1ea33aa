"""Data sets with stable sample ids, subjects, and forget-set resolution.

See docs/architecture.md, "Data". Images are uint8 tensors in memory; `SampleSet.batches()` turns
them into normalised floats one batch at a time.
"""

from lethe.data.datasets import BUILTIN, SPLITS, dataset_location, dataset_names, load_dataset
from lethe.data.forget import ForgetSplit, forget_mask, resolve_forget_set
from lethe.data.sampleset import Batches, Normalization, SampleSet, concat
from lethe.data.shards import iter_shards, publish_dataset, write_shards
from lethe.data.subjects import (
    SAMPLES_PER_SUBJECT,
    publish_subject_map,
    read_subject_file,
    subject_map,
    synthetic_subjects,
)

__all__ = [
    "BUILTIN",
    "SAMPLES_PER_SUBJECT",
    "SPLITS",
    "Batches",
    "ForgetSplit",
    "Normalization",
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
    "resolve_forget_set",
    "subject_map",
    "synthetic_subjects",
    "write_shards",
]
