"""The ladder's repair rung on memorised subjects (issue 24): each repair method after the default
dampening, through the product's own `run_repair`, with its budget a share of the recipe.

Per method and seed, the row is the memorised measurer's (benchmarks/memorised.py) of the repaired
candidate, its seconds (the dampening request plus the repair, evaluation excluded) and its
`repair_to_retrain`: the repair's wall time over the retraining's, from the same run. The goals (per
seed and kind, against the retrained model): still-flagged subjects, flagged share and agreement each
within `DISTANCE_LIMIT`; the forget samples' mean loss between `LOSS_RATIO` of the retrained model's;
test accuracy within `TEST_DROP_LIMIT` of the original's; budget and wall time at most `COST_LIMIT`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from lethe.data import ForgetSplit, SampleSet
from lethe.unlearning import repair

PREFIX = "repair_"
DISTANCE_LIMIT = 0.05
TEST_DROP_LIMIT = 0.01
LOSS_RATIO = (0.8, 1.5)
COST_LIMIT = 0.2
CLOSE = ("still_flagged", "flagged_share", "memorised_agreement")


def source(samples: SampleSet, device: torch.device) -> Callable[[int, int], Any]:
    """A repair batch source over `samples`: normalised (x, y) batches on `device`, in a seeded order."""
    return lambda batch_size, seed: samples.batches(batch_size, shuffle=True, seed=seed, device=device)


def repair_rows(original: nn.Module, dampened: nn.Module, dampen_s: float, split: ForgetSplit,
                recipe: Mapping[str, int], measure: Callable[[nn.Module], dict[str, Any]], *, share: float,
                seed: int, device: torch.device) -> dict[str, dict[str, Any]]:
    """{repair_<method>: measure(repaired)..., seconds, info} for every registered repair method."""
    data = repair.RepairData(forget=source(split.forget, device), retain=source(split.retain, device),
                             num_forget=len(split.forget), num_retain=len(split.retain),
                             num_classes=split.forget.num_classes)
    budget = repair.RepairBudget.share_of_recipe(share, training_samples=recipe["training_samples"],
                                                 epochs=recipe["epochs"])
    rows = {}
    for name in repair.repair_names():
        candidate = copy.deepcopy(dampened)
        torch.manual_seed(seed)
        report = repair.run_repair(repair.get_repair(name), original, candidate, data, budget,
                                   repair.RepairSettings(device=device, seed=seed))
        info = {**report.to_dict(), "dampen_s": dampen_s, "repair_s": report.seconds,
                "recipe_share": report.sample_steps / (recipe["training_samples"] * recipe["epochs"]),
                "needs_labels": repair.get_repair(name).needs_labels}
        rows[PREFIX + name] = {**measure(candidate), "seconds": dampen_s + report.seconds, "info": info}
    return rows


def _check(row: Mapping[str, Any], gold: Mapping[str, Any], original: Mapping[str, Any], kind: str
           ) -> dict[str, Any]:
    """One seed and kind: each criterion's value and whether it holds."""
    mine, theirs = row.get(kind) or {}, gold.get(kind) or {}
    out: dict[str, Any] = {}
    for metric in CLOSE:
        distance = abs(mine[metric] - theirs[metric])
        out[metric] = {"distance": distance, "met": distance <= DISTANCE_LIMIT + 1e-9}
    ratio = mine["forget_loss"] / theirs["forget_loss"] if theirs.get("forget_loss") else None
    out["forget_loss_ratio"] = {"value": ratio,
                                "met": ratio is not None and LOSS_RATIO[0] <= ratio <= LOSS_RATIO[1]}
    drop = original["test_accuracy"] - row["test_accuracy"]
    out["test_accuracy_drop"] = {"value": drop, "met": drop <= TEST_DROP_LIMIT + 1e-9}
    to_retrain = row["info"]["repair_s"] / gold["seconds"] if gold.get("seconds") else None
    out["repair_to_retrain"] = {"value": to_retrain,
                                "met": to_retrain is not None and to_retrain <= COST_LIMIT}
    out["recipe_share"] = {"value": row["info"]["recipe_share"],
                           "met": row["info"]["recipe_share"] <= COST_LIMIT + 1e-9}
    out["met"] = all(v["met"] for v in out.values() if isinstance(v, dict))
    out["gate_refuses"] = bool(row["gate_refuses"])
    return out


def ladder_goals(per_seed: Mapping[str, Mapping[str, Any]], summary: Mapping[str, Any]) -> dict[str, Any]:
    """Per kind and repair method: every seed's check, whether every seed meets every criterion, and where
    none does, whether the gate still refused (so `retrain: auto` must finish the job)."""
    seeds = sorted(per_seed)
    methods = [m for m in per_seed[seeds[0]]["methods"] if m.startswith(PREFIX)]
    limits = {"distance_max": DISTANCE_LIMIT, "test_accuracy_drop_max": TEST_DROP_LIMIT,
              "forget_loss_ratio": list(LOSS_RATIO), "cost_max": COST_LIMIT}
    out: dict[str, Any] = {"limits": limits, "by_kind": {}}
    for kind in summary:
        by_method = {}
        for method in methods:
            checks = {s: _check(per_seed[s]["methods"][method], per_seed[s]["methods"]["retrained"],
                                per_seed[s]["methods"]["original"], kind) for s in seeds}
            missed = sorted({c for check in checks.values() for c, v in check.items()
                             if isinstance(v, dict) and not v["met"]})
            by_method[method] = {"met": all(c["met"] for c in checks.values()), "missed": missed,
                                 "gate_refused_where_missed": all(c["gate_refuses"] for c in checks.values()
                                                                  if not c["met"]),
                                 "per_seed": checks}
        met = [m for m, r in by_method.items() if r["met"]]
        out["by_kind"][kind] = {"methods": by_method, "met_by": met}
    return out
