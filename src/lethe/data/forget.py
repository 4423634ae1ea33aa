"""Forget-set resolution: sample ids and/or subjects (and/or a class) → forget and retain sets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import torch

from lethe.data.sampleset import SampleSet
from lethe.data.subjects import samples_of, subject_map
from lethe.errors import DataError, EmptyForgetSetError, UnknownSamplesError


class ForgetSplit(NamedTuple):
    forget: SampleSet
    retain: SampleSet


def forget_mask(
    train: SampleSet,
    *,
    ids: Iterable[str] = (),
    subjects: Iterable[str] = (),
    subjects_map: Mapping[str, Sequence[str]] | None = None,
    forget_class: int | None = None,
) -> torch.Tensor:
    """A boolean mask over `train` of the samples to forget (see `resolve_forget_set`)."""
    ids, subjects = list(ids), list(subjects)
    mask = torch.zeros(len(train), dtype=torch.bool)
    if ids:
        mask[train.indices_of(ids)] = True
    if subjects:
        mapping = subjects_map if subjects_map is not None else subject_map(train)
        owned, unknown = samples_of(mapping, subjects)  # by normal form: one person, one subject
        if unknown:
            # Subject ids are personal data: say how many, never which.
            raise UnknownSamplesError(f"{unknown} of {len(subjects)} subject(s) unknown to the "
                                      f"subject map of {train.name}/{train.split}")
        if owned:
            mask[train.indices_of(owned)] = True
    if forget_class is not None:
        if train.labels is None:
            raise DataError(f"{train.name}/{train.split} has no labels: cannot forget a class")
        if not 0 <= forget_class < train.num_classes:
            raise DataError(f"class {forget_class} outside 0..{train.num_classes - 1}")
        mask |= train.labels == forget_class
    return mask


def resolve_forget_set(
    train: SampleSet,
    *,
    ids: Iterable[str] = (),
    subjects: Iterable[str] = (),
    subjects_map: Mapping[str, Sequence[str]] | None = None,
    forget_class: int | None = None,
) -> ForgetSplit:
    """The forget subset (ids named, samples of the subjects named, samples of `forget_class`) and
    the retain subset (everything else), both in `train`'s order; duplicates count once.

    Unknown ids or subjects raise UnknownSamplesError; nothing to forget raises EmptyForgetSetError.
    The synthetic subject map is used when subjects are given without `subjects_map`.
    """
    mask = forget_mask(train, ids=ids, subjects=subjects, subjects_map=subjects_map,
                       forget_class=forget_class)
    if not bool(mask.any()):
        raise EmptyForgetSetError(f"the request names no sample of {train.name}/{train.split}: "
                                  "nothing to forget")
    if bool(mask.all()):
        raise DataError(f"the request names all {len(train)} samples of {train.name}/{train.split}: "
                        "nothing would remain")
    return ForgetSplit(forget=train.subset(mask), retain=train.subset(~mask))

