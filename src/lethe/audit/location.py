"""Where a version's reference models are stored (`<artifacts>/audit/references/<root fingerprint>/`),
their files' names, and retiring a stored set. `lethe.audit.references` describes what the files hold."""

from __future__ import annotations

from lethe.audit.records import ReferenceManifest
from lethe.config import settings
from lethe.errors import AuditError
from lethe.storage import delete, exists, join_uri, list_uris

MANIFEST_FILE = "references.json"
TENSORS_FILE = "references.safetensors"
MODELS_DIR = "models"


def references_root(root_uri: str | None = None) -> str:
    """Where every version's reference models live: `<artifacts>/audit/references`."""
    return join_uri(str(root_uri or settings().artifacts), "audit", "references")


def references_uri(fingerprint: str, root_uri: str | None = None) -> str:
    """The folder of the reference models of the root version `fingerprint`."""
    if not fingerprint or not fingerprint.isalnum():
        raise AuditError(f"invalid model fingerprint {fingerprint!r} for the reference models' folder")
    return join_uri(references_root(root_uri), fingerprint)


def model_name(index: int) -> str:
    return f"ref-{index:02d}"


def stored_manifest(uri: str) -> ReferenceManifest | None:
    """The manifest of the set stored at `uri` (checked; a version-1 one upgraded); None when none."""
    manifest = join_uri(uri, MANIFEST_FILE)
    if not exists(manifest):
        return None
    return ReferenceManifest.get(manifest)


def retire_references(fingerprint: str, *, root_uri: str | None = None, uri: str | None = None) -> int:
    """Delete the reference models of the root version `fingerprint` (when a retrained version replaced
    it, or before a rebuild) under `root_uri`, or at `uri`; returns how many files were removed."""
    uri = uri or references_uri(fingerprint, root_uri)
    manifest = join_uri(uri, MANIFEST_FILE)
    removed = 0
    if exists(manifest):  # the manifest first: a half-deleted set is never taken for a whole one
        delete(manifest)
        removed += 1
    for item in list_uris(uri):
        if not item.endswith(".sha256") and exists(item):
            delete(item)
            removed += 1
    return removed
