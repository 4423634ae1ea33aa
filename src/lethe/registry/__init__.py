"""MLflow: log runs with evidence, register versions with lineage, the `champion` alias, review."""

from lethe.registry.client import get_client
from lethe.registry.privacy import PrivacyGuard
from lethe.registry.registry import (
    CHAMPION,
    DEFAULT_EXPERIMENT,
    EVIDENCE_PATH,
    MODEL_PATH,
    PromotionDecision,
    Registry,
    VersionInfo,
    describe,
)

__all__ = [
    "CHAMPION",
    "DEFAULT_EXPERIMENT",
    "EVIDENCE_PATH",
    "MODEL_PATH",
    "PrivacyGuard",
    "PromotionDecision",
    "Registry",
    "VersionInfo",
    "describe",
    "get_client",
]
