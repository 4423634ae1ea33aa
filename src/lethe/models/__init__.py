"""The model zoo (one `Architecture` row per model, `lethe.models.architectures`), model directories
(weights + card, verified on load) and training.

See docs/architecture.md, "Models". The names below load on first use: reading the architecture
rows (the CLI's help) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lethe.models.architectures import (
        ARCHITECTURES,
        Architecture,
        architecture_names,
        get_architecture,
        register_architecture,
        unregister_architecture,
    )
    from lethe.models.checkpoint import (
        CARD_FILE,
        WEIGHTS_FILE,
        ModelCard,
        is_model_dir,
        load_model,
        read_card,
        save_model,
        verify_model_dir,
        write_sidecars,
    )
    from lethe.models.stages import forward_stages
    from lethe.models.zoo import build_model, model_spec

_HOME = {
    **dict.fromkeys(("ARCHITECTURES", "Architecture", "architecture_names", "get_architecture",
                     "register_architecture", "unregister_architecture"), "lethe.models.architectures"),
    **dict.fromkeys(("CARD_FILE", "WEIGHTS_FILE", "ModelCard", "is_model_dir", "load_model", "read_card",
                     "save_model", "verify_model_dir", "write_sidecars"), "lethe.models.checkpoint"),
    "forward_stages": "lethe.models.stages",
    "build_model": "lethe.models.zoo",
    "model_spec": "lethe.models.zoo",
}

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "CARD_FILE",
    "ModelCard",
    "WEIGHTS_FILE",
    "architecture_names",
    "build_model",
    "forward_stages",
    "get_architecture",
    "is_model_dir",
    "load_model",
    "model_spec",
    "read_card",
    "register_architecture",
    "save_model",
    "unregister_architecture",
    "verify_model_dir",
    "write_sidecars",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
