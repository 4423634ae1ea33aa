"""Fetching a model version into a directory: from the registry, or copied from a model directory.

A model is named by a registry reference (`models:/NAME/VERSION`, `models:/NAME@ALIAS`, an alias
such as `champion`, a version number) or by a local model directory. The `fetch-model` pipeline
step, the collect and prepare steps and the importances refresh all fetch through here.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from lethe.models import is_model_dir, read_card
from lethe.registry import Registry


@dataclass(frozen=True)
class FetchedModel:
    """A model version copied into a directory: where it came from and its fingerprint."""

    source: Literal["directory", "registry"]
    name: str
    version: str
    fingerprint: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def fetch_model(model: str, dest_dir: str | Path, *, tracking_uri: str | None = None,
                model_name: str | None = None) -> FetchedModel:
    """Copy the model directory of `model` into `dest_dir`; returns its source, name, version, fingerprint."""
    dest = Path(dest_dir)
    if is_model_dir(model):
        if Path(model).resolve() != dest.resolve():
            shutil.copytree(model, dest, dirs_exist_ok=True)
        return FetchedModel(source="directory", name="", version="", fingerprint=read_card(dest).fingerprint)
    registry = Registry(tracking_uri, model_name)
    info = registry.resolve(model)
    Registry(tracking_uri, info.name).download_model(info.version, dest)
    return FetchedModel(source="registry", name=info.name, version=info.version,
                        fingerprint=read_card(dest).fingerprint)
