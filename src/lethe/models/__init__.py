"""The model zoo, model directories (weights + card, verified on load) and training.

See docs/architecture.md, "Models".
"""

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
from lethe.models.zoo import ARCHS, build_model, model_spec

__all__ = [
    "ARCHS",
    "CARD_FILE",
    "WEIGHTS_FILE",
    "ModelCard",
    "build_model",
    "is_model_dir",
    "load_model",
    "model_spec",
    "read_card",
    "save_model",
    "verify_model_dir",
    "write_sidecars",
]
