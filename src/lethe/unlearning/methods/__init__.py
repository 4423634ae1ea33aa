"""Importance methods: one module per method, and one registry entry below for each.

Adding a method: write `lethe/unlearning/methods/<name>.py` defining an `ImportanceMethod`
(objective, gradient term, whether it needs labels, reference) and register it here. The engine,
the steps, the CLI's `--method`, the caches, the model card and the registry tags take it from
here by name; nothing else changes.
"""

from lethe.unlearning.methods.base import (
    ABSOLUTE,
    METHODS,
    SQUARE,
    GradientTerm,
    ImportanceMethod,
    Objective,
    get_method,
    method_names,
    register_method,
    unregister_method,
)
from lethe.unlearning.methods.lfssd import LFSSD
from lethe.unlearning.methods.ssd import SSD

# The registry entries. The first is the product default (label-free: erasure requests carry no labels).
register_method(LFSSD)
register_method(SSD)
DEFAULT_METHOD = LFSSD.name

__all__ = [
    "ABSOLUTE",
    "DEFAULT_METHOD",
    "LFSSD",
    "METHODS",
    "SQUARE",
    "SSD",
    "GradientTerm",
    "ImportanceMethod",
    "Objective",
    "get_method",
    "method_names",
    "register_method",
    "unregister_method",
]
