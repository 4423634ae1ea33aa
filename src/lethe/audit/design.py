"""Which reference model trains on which samples: halves drawn by subject.

A person is the unit of erasure, and a person's images are correlated (same face, same handwriting,
same trait). A reference model "out" for one of a person's images must therefore never have seen the
person's other images, or it has learnt the trait and its confidence is no longer that of a model that
never met the person. So the halves are drawn per subject: every sample of a subject is in the same
reference models, and each subject is in ⌊K/2⌋ of the K models (odd K: ⌊K/2⌋ or ⌈K/2⌉ at random),
so it is out of about K/2. Samples no subject owns are drawn one by one, as before.

The subjects come from the version's subject map (`lethe.data.subject_map`: LETHE_SUBJECT_MAP, or the
synthetic groups of the built-in sets). Subjects that share a sample (a photo of two people) are one
group: their samples can only be in or out together. The design keeps the group index of every
sample and a fingerprint of the partition (which samples go together, never who they are), so the
judge knows who is who and notices when the map changed since.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import torch

from lethe.errors import AuditError

#: The group index of a sample that no subject owns (it is split on its own; the person-level test
#: reads it as a person of one sample: `lethe.evaluation.per_person.NO_GROUP`, the same value).
NO_GROUP = -1


def subject_groups(ids: Sequence[str], mapping: Mapping[str, Sequence[str]]) -> torch.Tensor:
    """int64 [N]: the group of each sample of `ids` (NO_GROUP where no subject owns it).

    Groups are the subjects of `mapping`, merged where they share a sample, numbered 0.. in the order
    of their first sample in `ids`. Ids of the map that are not in `ids` are ignored."""
    position = {sample_id: i for i, sample_id in enumerate(ids)}
    parent = list(range(len(ids)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owned = torch.zeros(len(ids), dtype=torch.bool)
    for samples in mapping.values():
        rows = [position[s] for s in samples if s in position]
        for row in rows:
            owned[row] = True
        for row in rows[1:]:
            a, b = find(rows[0]), find(row)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups = torch.full((len(ids),), NO_GROUP, dtype=torch.int64)
    number: dict[int, int] = {}
    for i in owned.nonzero().flatten().tolist():
        groups[i] = number.setdefault(find(i), len(number))
    return groups


def groups_fingerprint(ids: Sequence[str], groups: torch.Tensor) -> str:
    """sha256 of the partition: the sorted groups of sorted sample ids (ungrouped samples alone).

    Names no subject: two maps that group the same samples together have the same fingerprint."""
    members: dict[int, list[str]] = {}
    for sample_id, group in zip(ids, groups.tolist(), strict=True):
        if group != NO_GROUP:
            members.setdefault(group, []).append(sample_id)
    parts = sorted("\x1f".join(sorted(samples)) for samples in members.values())
    return hashlib.sha256("\x1e".join(parts).encode()).hexdigest()


def units_of(groups: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(unit of each sample [N], number of units): a group is one unit, an ungrouped sample its own."""
    grouped = groups != NO_GROUP
    count = int(groups.max()) + 1 if bool(grouped.any()) else 0
    alone = int((~grouped).sum())
    units = groups.clone()
    units[~grouped] = torch.arange(count, count + alone)
    return units, count + alone


def membership_design(k: int, n: int, *, seed: int, never_in: torch.Tensor | None = None,
                      groups: torch.Tensor | None = None) -> torch.Tensor:
    """A [K, N] boolean matrix, True where sample i is in reference model k's training half.

    Each unit (a group of `groups`, or a sample of no group; every sample when `groups` is None) is in
    ⌊K/2⌋ models (odd K: ⌊K/2⌋ or ⌈K/2⌉ at random), the models chosen at random per unit, so every
    sample is out in about K/2 models, all of a subject's samples in the same ones, and each model
    trains on about half of the subjects. `never_in`: a [N] mask of samples no reference model may
    train on (the root never saw them)."""
    if k < 2:
        raise AuditError(f"reference models come in sets of at least 2, not {k}")
    if groups is not None and len(groups) != n:
        raise AuditError(f"{len(groups)} group indices for {n} samples")
    units, count = (torch.arange(n), n) if groups is None else units_of(groups.to(torch.int64))
    generator = torch.Generator().manual_seed(int(seed))
    ranks = torch.rand(count, k, generator=generator).argsort(dim=1).argsort(dim=1)  # a random order per unit
    in_count = torch.full((count,), k // 2, dtype=torch.int64)
    if k % 2:
        in_count += torch.randint(0, 2, (count,), generator=generator)
    membership = (ranks < in_count[:, None])[units].T.contiguous()
    if never_in is not None:
        membership[:, never_in] = False
    return membership
