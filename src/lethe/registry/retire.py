"""Retiring a superseded model version: its weights are deleted from the artifact store (lethe's model
files and MLflow's logged model under the run's `model/`), its metadata, metrics and evidence stay, and
the version is tagged `lethe.retired` with the time. The champion is never retired.

Idempotent and resumable: the files go first and the tag last, so a retirement that stopped half way
is finished by the next call, and a retired version is left as it is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from lethe.errors import RegistryError
from lethe.registry.metadata import VersionInfo
from lethe.registry.tags import RETIRED_TAG


class Versions(Protocol):
    model_name: str
    tracking_uri: str
    client: Any  # mlflow.MlflowClient

    def version(self, version: str | int) -> VersionInfo: ...

    def champion_version(self) -> str | None: ...


def is_retired(info: VersionInfo) -> bool:
    return bool(info.tags.get(RETIRED_TAG))


def has_weights(registry: Versions, info: VersionInfo) -> bool:
    """Whether any file of the version's model is still in the artifact store."""
    from lethe.registry.client import mlflow_errors  # MLflow loads at the first registry call
    from lethe.registry.flavor import MODEL_PATH

    if not info.run_id:
        return False
    with mlflow_errors(registry.tracking_uri):
        return bool(registry.client.list_artifacts(info.run_id, MODEL_PATH))


def retire_version(registry: Versions, version: str | int, *, at: datetime) -> bool:
    """Delete a version's weights and tag it retired; False when it was retired already."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from lethe.registry.client import mlflow_errors
    from lethe.registry.flavor import MODEL_PATH

    info = registry.version(version)
    if is_retired(info):
        return False
    if registry.champion_version() == info.version:
        raise RegistryError(f"version {info.version} of {registry.model_name} is the champion; "
                            "it cannot be retired")
    with mlflow_errors(registry.tracking_uri):
        if info.run_id and registry.client.list_artifacts(info.run_id, MODEL_PATH):
            run = registry.client.get_run(info.run_id)
            get_artifact_repository(run.info.artifact_uri).delete_artifacts(MODEL_PATH)
        registry.client.set_model_version_tag(registry.model_name, info.version, RETIRED_TAG,
                                              at.isoformat(timespec="seconds"))
    return True
