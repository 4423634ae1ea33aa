"""The unlearning engine: importances, dampening and the choice of α. Pure torch.

Nothing here imports the rest of lethe except the leaf module `lethe.errors`.
"""

from lethe.unlearning.calibration import AlphaSearchResult, AlphaTrial, calibrate_alpha, search_alpha
from lethe.unlearning.dampening import DampeningReport, check_pair, dampen
from lethe.unlearning.fingerprint import invalidate_fingerprint, model_fingerprint
from lethe.unlearning.importances import Importances, compute_importances
from lethe.unlearning.methods import (
    DEFAULT_METHOD,
    METHODS,
    ImportanceMethod,
    get_method,
    method_names,
    register_method,
)

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "AlphaSearchResult",
    "AlphaTrial",
    "DampeningReport",
    "ImportanceMethod",
    "Importances",
    "calibrate_alpha",
    "check_pair",
    "compute_importances",
    "dampen",
    "get_method",
    "invalidate_fingerprint",
    "method_names",
    "model_fingerprint",
    "register_method",
    "search_alpha",
]
