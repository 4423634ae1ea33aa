"""Audit artifacts of a model version: its reference models (trained with the version's recipe on
halves of its data drawn by subject) and their logits, for the membership test of a person.

See `lethe.audit.references` for the design, `lethe.audit.location` for where they are stored,
`lethe.audit.training` for preparing them, `lethe.audit.design` for the halves, `lethe.audit.plan`
for the plan, `lethe.audit.recipe` for how a version's recipe is found. Imported lazily:
`from lethe.audit.location import references_root` loads no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "groups_fingerprint": "lethe.audit.design",
    "membership_design": "lethe.audit.design",
    "subject_groups": "lethe.audit.design",
    "references_root": "lethe.audit.location",
    "references_uri": "lethe.audit.location",
    "retire_references": "lethe.audit.location",
    "DEFAULT_K": "lethe.audit.plan",
    "ReferencePlan": "lethe.audit.plan",
    "plan_references": "lethe.audit.plan",
    "read_recipe": "lethe.audit.recipe",
    "root_fingerprint": "lethe.audit.recipe",
    "PER_SAMPLE": "lethe.audit.records",
    "PER_SUBJECT": "lethe.audit.records",
    "ReferenceManifest": "lethe.audit.records",
    "ReferenceSet": "lethe.audit.references",
    "find_references": "lethe.audit.references",
    "assemble_references": "lethe.audit.training",
    "prepare_references": "lethe.audit.training",
    "reference_model": "lethe.audit.training",
    "train_reference": "lethe.audit.training",
    "train_references": "lethe.audit.training",
}

__all__ = [
    "DEFAULT_K",
    "PER_SAMPLE",
    "PER_SUBJECT",
    "ReferenceManifest",
    "ReferencePlan",
    "ReferenceSet",
    "assemble_references",
    "find_references",
    "groups_fingerprint",
    "membership_design",
    "plan_references",
    "prepare_references",
    "read_recipe",
    "reference_model",
    "references_root",
    "references_uri",
    "retire_references",
    "root_fingerprint",
    "subject_groups",
    "train_reference",
    "train_references",
]

if TYPE_CHECKING:
    from lethe.audit.design import groups_fingerprint, membership_design, subject_groups
    from lethe.audit.location import references_root, references_uri, retire_references
    from lethe.audit.plan import DEFAULT_K, ReferencePlan, plan_references
    from lethe.audit.recipe import read_recipe, root_fingerprint
    from lethe.audit.records import PER_SAMPLE, PER_SUBJECT, ReferenceManifest
    from lethe.audit.references import ReferenceSet, find_references
    from lethe.audit.training import (
        assemble_references,
        prepare_references,
        reference_model,
        train_reference,
        train_references,
    )


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lethe.audit' has no attribute {name!r}")
