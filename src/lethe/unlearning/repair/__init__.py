"""Repair methods: the ladder's second rung. One module per method, and one registry entry below each.

Adding a method: write `lethe/unlearning/repair/<name>.py` defining a `RepairMethod` (its function, whether
it needs labels, its default share of the recipe, the refusals it addresses, its reference) and register
it here; the steps, the ladder's policy and the CLI take it from here by name.
"""

from lethe.unlearning.repair.base import (
    BatchSource,
    BudgetExhausted,
    BudgetMeter,
    RepairBudget,
    RepairData,
    RepairMethod,
    RepairReport,
    RepairSettings,
    batches_of,
    get_repair,
    register_repair,
    repair_names,
    run_repair,
    unregister_repair,
)
from lethe.unlearning.repair.damage_repair import DAMAGE_REPAIR
from lethe.unlearning.repair.neggrad_plus import NEGGRAD_PLUS
from lethe.unlearning.repair.retain_finetune import RETAIN_FINETUNE
from lethe.unlearning.repair.scrub import SCRUB

register_repair(RETAIN_FINETUNE)
register_repair(NEGGRAD_PLUS)
register_repair(SCRUB)
register_repair(DAMAGE_REPAIR)

__all__ = [
    "DAMAGE_REPAIR",
    "NEGGRAD_PLUS",
    "RETAIN_FINETUNE",
    "SCRUB",
    "BatchSource",
    "BudgetExhausted",
    "BudgetMeter",
    "RepairBudget",
    "RepairData",
    "RepairMethod",
    "RepairReport",
    "RepairSettings",
    "batches_of",
    "get_repair",
    "register_repair",
    "repair_names",
    "run_repair",
    "unregister_repair",
]
