"""Audit artifacts of a model version: its reference models (trained with the version's recipe on
random halves of its data) and their logits, for the per-example membership test.

See `lethe.audit.references` for the design and where they are stored, `lethe.audit.recipe` for
how a version's recipe is found.
"""

from lethe.audit.recipe import read_recipe, root_fingerprint
from lethe.audit.references import (
    DEFAULT_K,
    ReferencePlan,
    ReferenceSet,
    assemble_references,
    find_references,
    membership_design,
    plan_references,
    prepare_references,
    reference_model,
    references_root,
    references_uri,
    retire_references,
    train_reference,
)

__all__ = [
    "DEFAULT_K",
    "ReferencePlan",
    "ReferenceSet",
    "assemble_references",
    "find_references",
    "membership_design",
    "plan_references",
    "prepare_references",
    "read_recipe",
    "reference_model",
    "references_root",
    "references_uri",
    "retire_references",
    "root_fingerprint",
    "train_reference",
]
