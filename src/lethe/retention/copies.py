"""The inventory: every copy of a person's data that lethe keeps, per erasure request, with its state.

A copy of request R is
  - a model version that does not honour R (R is not among its requests, or it failed the gate and no
    reviewer approved it): the versions of the lineage before the one that honours R, and refused or
    needs-review candidates. Its weights are retired after the rollback window (`RetentionPolicy`),
    never beyond R's deadline; the champion is never a copy (the drift check reopens R instead);
  - the importances cached for such a version (`<artifacts>/importances/<model fingerprint>/`), retired
    with it;
  - a reference set (`<artifacts>/audit/references/<root>/`) whose models trained on R's samples (when
    the ledger knows R's sample ids; else every set, to be safe): retired whole after the rollback window
    (until then the evaluation keeps judging with it; `lethe audit prepare` trains a new set);
  - the folders of local pipeline runs (`<LETHE_HOME>/kfp`: fetched parents, forget sets, candidates)
    last written before R was fulfilled, retired after the rollback window.
What lethe does not manage (the source data, backups) is the policy's `not_managed`, named in the certificate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from lethe.audit.location import MANIFEST_FILE, references_root
from lethe.audit.records import ReferenceManifest
from lethe.errors import LetheError
from lethe.ledger import ErasureRequest
from lethe.registry.metadata import VersionInfo
from lethe.registry.retire import is_retired
from lethe.registry.tags import RETIRED_TAG
from lethe.retention.policy import RetentionPolicy
from lethe.storage import exists, join_uri, list_uris

VERSION, IMPORTANCES, REFERENCES, PIPELINE_RUN = "model version", "importances cache", "reference set", \
    "pipeline run"
KEPT, DUE, RETIRED = "kept", "due", "retired"


@dataclass(frozen=True)
class Copy:
    kind: str  # VERSION, IMPORTANCES, REFERENCES or PIPELINE_RUN
    name: str  # "version 1", or the copy's URI / folder
    state: str  # KEPT (until `due`), DUE (retired by the next `retention apply`) or RETIRED
    due: str | None = None  # ISO time the policy retires it
    retired_at: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.kind, self.name

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def honours(version: VersionInfo, request_id: str) -> bool:
    """Whether a version forgot the request and was accepted for it (gate passed, or a reviewer approved)."""
    return request_id in version.request_ids and (version.gate == "pass" or version.review == "approved")


def request_sample_ids(request: ErasureRequest) -> set[str] | None:
    """The request's sample ids as the ledger knows them; None when they are unknown (a subject's samples)."""
    if request.sample_ids:
        return set(request.sample_ids)
    ids = ((request.outcome or {}).get("resolution") or {}).get("forgotten_ids")
    return set(ids) if ids else None


@dataclass
class Holdings:
    """What the stores hold now: the registered versions, reference sets, cache folders and run folders."""

    versions: list[VersionInfo]
    champion: str | None
    references: dict[str, ReferenceManifest | None]  # folder URI -> its manifest (None: unfinished)
    caches: set[str]  # folder URIs under <artifacts>/importances
    runs: list[Path]  # folders under the pipeline root
    artifacts: str

    @classmethod
    def read(cls, registry: Any, *, artifacts: str, pipeline_root: Path | None) -> Holdings:
        versions = registry.versions()
        champion = registry.champion_version()
        return cls(versions=versions, champion=champion, references=_reference_sets(artifacts),
                   caches=_folders(join_uri(artifacts, "importances")),
                   runs=sorted(p for p in pipeline_root.iterdir() if p.is_dir())
                   if pipeline_root is not None and pipeline_root.is_dir() else [],
                   artifacts=artifacts)

    def cache_of(self, version: VersionInfo) -> str:
        return join_uri(self.artifacts, "importances", version.metadata.model_fingerprint or "-")


def _folders(root: str) -> set[str]:
    """The first-level folders below `root` that hold any object."""
    found = set()
    prefix = root.rstrip("/") + "/"
    for uri in list_uris(root):
        rest = uri[len(prefix):] if uri.startswith(prefix) else ""
        if "/" in rest:
            found.add(prefix + rest.split("/", 1)[0])
    return found


def _reference_sets(artifacts: str) -> dict[str, ReferenceManifest | None]:
    sets: dict[str, ReferenceManifest | None] = {}
    for folder in sorted(_folders(references_root(artifacts))):
        manifest = join_uri(folder, MANIFEST_FILE)
        try:
            sets[folder] = ReferenceManifest.get(manifest) if exists(manifest) else None
        except LetheError:  # unreadable: it may hold anyone's samples
            sets[folder] = None
    return sets


def _due(request: ErasureRequest, policy: RetentionPolicy) -> datetime:
    """When the rollback window of a fulfilled request ends: never after its deadline."""
    fulfilled = request.fulfilled_at or request.updated_at
    return min(fulfilled + policy.window, request.deadline)


def _state(retired: bool, due: datetime, now: datetime) -> str:
    return RETIRED if retired else DUE if due <= now else KEPT


def copies_of(request: ErasureRequest, holdings: Holdings, policy: RetentionPolicy, now: datetime
              ) -> list[Copy]:
    """The copies of one request's data that lethe keeps (or retired, for model versions, which stay
    registered), by kind."""
    due = _due(request, policy)
    at = due.isoformat(timespec="seconds")
    copies: list[Copy] = []
    for version in holdings.versions:
        if honours(version, request.id) or version.version == holdings.champion:
            continue
        retired = is_retired(version)
        copies.append(Copy(VERSION, f"version {version.version}", _state(retired, due, now), at,
                           version.tags.get(RETIRED_TAG) if retired else None))
        cache = holdings.cache_of(version)
        if cache in holdings.caches:
            copies.append(Copy(IMPORTANCES, cache, _state(False, due, now), at))
    ids = request_sample_ids(request)
    for folder, manifest in holdings.references.items():
        if manifest is None or ids is None or ids & set(manifest.train_ids):
            copies.append(Copy(REFERENCES, folder, _state(False, due, now), at))
    fulfilled = (request.fulfilled_at or now).timestamp()
    for run in holdings.runs:
        if run.stat().st_mtime <= fulfilled:
            copies.append(Copy(PIPELINE_RUN, str(run), _state(False, due, now), at))
    return copies
