"""The reference models' records on disk: the manifest of a stored set (`references.json`); the plan
(what each training task needs) is `lethe.audit.plan.ReferencePlan`.

Version 2 of both records the design (`per-subject`: halves drawn by subject, `lethe.audit.design`),
the subject map's fingerprint and each training sample's group. A version-1 file reads as version 2
with the design `per-sample` and no groups: its halves were drawn sample by sample, so it cannot judge
a person (the evaluation says so and `lethe audit prepare --rebuild` replaces it).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from lethe.errors import AuditError
from lethe.storage.records import Record

PER_SUBJECT = "per-subject"
PER_SAMPLE = "per-sample"
DESIGNS = (PER_SUBJECT, PER_SAMPLE)


def per_sample_upgrade(fields: dict[str, Any]) -> dict[str, Any]:
    """Version 1 → 2: a set or plan drawn sample by sample, with no groups."""
    return {**fields, "design": PER_SAMPLE, "subject_map_fingerprint": None}


class ReferenceManifest(Record):
    """`references.json`: ids, fingerprints, recipe and design of a stored reference set; written last
    (a folder without it is unfinished) with the sha256 of its tensors file."""

    FORMAT: ClassVar[str] = "lethe-references/2"
    WHAT: ClassVar[str] = "a lethe reference set's manifest"
    ERROR: ClassVar[type[AuditError]] = AuditError
    UPGRADES: ClassVar[dict[int, Any]] = {1: per_sample_upgrade}

    k: int
    train_ids: list[str]
    test_ids: list[str] = []
    model_fingerprint: str
    dataset_fingerprint: str
    recipe: dict[str, Any]
    seed: int = 0
    epochs: int = 0
    excluded: int = 0
    reference_fingerprints: list[str] = []
    created_at: str = ""
    num_classes: int
    lethe_version: str = ""
    tensors_sha256: str
    design: Literal["per-subject", "per-sample"] = PER_SUBJECT
    #: sha256 of the partition of the training samples into subjects (`groups_fingerprint`).
    subject_map_fingerprint: str | None = None
    #: How each reference model's seed follows from the set's (recorded so it can be repeated).
    seed_scheme: str = ""
