"""One plain function per pipeline step: paths/URIs in, paths/URIs out; KFP components call them.

Imported lazily (`from lethe.steps import collect_requests` loads only that step's modules), so a
pipeline task pays only for its own imports. `unlearn` and `evaluate` share their modules' names:
import them as `from lethe.steps.unlearn import unlearn`, `from lethe.steps.evaluate import evaluate`.
Every step returns a dataclass of `lethe.steps.results` (`fetch_model`: `lethe.registry.fetch.FetchedModel`).
The KFP components reach `unlearn` and `evaluate` through the forget spec's adapters in
`components.adapters`.
"""

from __future__ import annotations

import importlib
from typing import Any

_STEPS = {
    "collect_requests": "lethe.steps.collect",
    "prepare_request": "lethe.steps.prepare",
    "fetch_model": "lethe.registry.fetch",  # registry I/O; a pipeline step of its own
    "compute_importances": "lethe.steps.full_importances",
    "compute_importances_shard": "lethe.steps.full_importances",
    "merge_importances": "lethe.steps.full_importances",
    "refresh_importances": "lethe.steps.full_importances",
    "register_and_gate": "lethe.steps.register",
    "finalize_requests": "lethe.steps.finalize",
}

__all__ = sorted(_STEPS)


def __getattr__(name: str) -> Any:
    if name in _STEPS:
        return getattr(importlib.import_module(_STEPS[name]), name)
    raise AttributeError(f"module 'lethe.steps' has no attribute {name!r}")
