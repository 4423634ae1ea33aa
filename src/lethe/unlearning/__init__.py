"""The unlearning engine: importances, dampening and the choice of α. Pure torch.

Nothing here imports the rest of lethe except the leaf module `lethe.errors`.
"""

from lethe.unlearning.calibration import AlphaSearchResult, AlphaTrial, calibrate_alpha, search_alpha
from lethe.unlearning.dampening import DampeningReport, check_pair, dampen
from lethe.unlearning.fingerprint import model_fingerprint
from lethe.unlearning.importances import METHODS, Importances, compute_importances

__all__ = [
    "METHODS",
    "AlphaSearchResult",
    "AlphaTrial",
    "DampeningReport",
    "Importances",
    "calibrate_alpha",
    "check_pair",
    "compute_importances",
    "dampen",
    "model_fingerprint",
    "search_alpha",
]
