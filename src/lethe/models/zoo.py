"""The model zoo: `build_model(arch, num_classes=, in_channels=, **kwargs)` for every registered
architecture (`lethe.models.architectures`).

Every model built here carries `lethe_spec` (arch, num_classes, in_channels, arch_kwargs), which
`save_model` writes into the model card so that any machine can rebuild it.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from lethe.errors import ModelError
from lethe.models.architectures import get_architecture

SPEC_ATTRIBUTE = "lethe_spec"


def build_model(arch: str, *, num_classes: int, in_channels: int, **kwargs: Any) -> nn.Module:
    """A freshly initialised model (seed torch beforehand for reproducible weights)."""
    row = get_architecture(arch)
    if num_classes < 2:
        raise ModelError(f"a classifier needs at least 2 classes, got {num_classes}")
    if in_channels < 1:
        raise ModelError(f"in_channels must be positive, got {in_channels}")
    try:
        model = row.build(num_classes, in_channels, **kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:  # an argument it does not take, or a bad value
        raise ModelError(f"bad arguments for {arch}: {exc}") from exc
    # Record the defaults too: a model saved today rebuilds the same if a default changes later.
    arch_kwargs = {**row.default_kwargs(), **kwargs}
    setattr(model, SPEC_ATTRIBUTE, {"arch": arch, "num_classes": int(num_classes),
                                    "in_channels": int(in_channels), "arch_kwargs": arch_kwargs})
    return model


def model_spec(model: nn.Module) -> dict[str, Any] | None:
    """What `build_model` was called with, if the model came from it."""
    spec = getattr(model, SPEC_ATTRIBUTE, None)
    return dict(spec) if isinstance(spec, dict) else None
