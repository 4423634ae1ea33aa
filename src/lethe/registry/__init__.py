"""MLflow: log runs with evidence, register versions with lineage, the `champion` alias, review.

One role per module: `registry` (the `Registry` façade over MLflow's client), `flavor` (what a
version's `model/` holds: save/log, download/load), `tags` (every `lethe.*` tag name), `metadata`
(their values, typed), `description`, `lineage`, `privacy`, `review`, `serving` (the pyfunc MLflow
serves), `client`. Imported lazily: `from lethe.registry.tags import SCENARIO_TAG` loads no MLflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "CHAMPION": "lethe.registry.tags",
    "PromotionDecision": "lethe.registry.metadata",
    "VersionInfo": "lethe.registry.metadata",
    "VersionMetadata": "lethe.registry.metadata",
    "describe": "lethe.registry.description",
    "EVIDENCE_PATH": "lethe.registry.flavor",
    "MODEL_PATH": "lethe.registry.flavor",
    "PrivacyGuard": "lethe.registry.privacy",
    "DEFAULT_EXPERIMENT": "lethe.registry.registry",
    "Registry": "lethe.registry.registry",
    "get_client": "lethe.registry.client",
}

__all__ = ["CHAMPION", "DEFAULT_EXPERIMENT", "EVIDENCE_PATH", "MODEL_PATH", "PrivacyGuard",
           "PromotionDecision", "Registry", "VersionInfo", "VersionMetadata", "describe", "get_client"]

if TYPE_CHECKING:
    from lethe.registry.client import get_client
    from lethe.registry.description import describe
    from lethe.registry.flavor import EVIDENCE_PATH, MODEL_PATH
    from lethe.registry.metadata import PromotionDecision, VersionInfo, VersionMetadata
    from lethe.registry.privacy import PrivacyGuard
    from lethe.registry.registry import DEFAULT_EXPERIMENT, Registry
    from lethe.registry.tags import CHAMPION


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lethe.registry' has no attribute {name!r}")
