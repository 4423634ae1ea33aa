"""Nested mappings flattened to one level (YAML thresholds, MLflow params and metrics)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flatten(values: Mapping[str, Any], separator: str, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} → {"a<separator>b": 1}, depth first, keys in their original order."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, separator, f"{name}{separator}"))
        else:
            flat[name] = value
    return flat
