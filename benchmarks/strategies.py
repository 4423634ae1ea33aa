"""The dampening strategies every quality scenario compares, each the product's own choice.

Every strategy goes through `lethe.steps.unlearn.choose_dampening` with the target `make_target` builds
from the gate's thresholds, so the published figures are what `lethe unlearn` does:

- `ssd`: SSD importances (labels), α = the paper's 10, every layer;
- `lfssd_paper`: LFSSD, α = 10, every layer;
- `lfssd_assd`: LFSSD, α from the ASSD rule, every layer;
- `lfssd_search_all`: LFSSD, α searched, every layer (the search before the selection existed);
- `lfssd_select`: LFSSD, the product's default: the cut-off and α searched.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from benchmarks.timing import timed
from lethe.evaluation import ForgettingTarget
from lethe.forgetting.resolved import ResolvedForgetSet
from lethe.steps.unlearn import DampeningChoice, choose_dampening
from lethe.unlearning import Importances, dampen
from lethe.unlearning.selection import EVERY_LAYER

PAPER_ALPHA = "paper"  # a strategy's α: the profile's `paper_alpha`


@dataclass(frozen=True)
class Strategy:
    """One way to dampen, as `choose_dampening` is asked for it."""

    importances: str  # the importance method: "lfssd" | "ssd"
    alpha: str  # "search" | "assd" | PAPER_ALPHA
    cutoff: str | None  # None: the product's default for the α (the selection when α is searched)

    @property
    def searched(self) -> bool:
        return self.alpha == "search"


STRATEGIES = {"ssd": Strategy("ssd", PAPER_ALPHA, EVERY_LAYER),
              "lfssd_paper": Strategy("lfssd", PAPER_ALPHA, EVERY_LAYER),
              "lfssd_assd": Strategy("lfssd", "assd", EVERY_LAYER),
              "lfssd_search_all": Strategy("lfssd", "search", EVERY_LAYER),
              "lfssd_select": Strategy("lfssd", "search", None)}
DAMPENING_METHODS = tuple(STRATEGIES)
METHODS = ("original", "retrained", "finetune", *DAMPENING_METHODS)
METHOD_LABELS = {"original": "original", "retrained": "retrained (gold)", "finetune": "finetune",
                 "ssd": "SSD (labels, α=10)", "lfssd_paper": "LFSSD α=10", "lfssd_assd": "LFSSD ASSD α",
                 "lfssd_search_all": "LFSSD searched α, every layer",
                 "lfssd_select": "LFSSD selection (default)"}
DEFAULT_STRATEGY = "lfssd_select"


def choose(strategy: str, original: nn.Module, full: Importances, forget: Importances,
           request: ResolvedForgetSet, target: ForgettingTarget, *, paper_alpha: float) -> DampeningChoice:
    """The configuration the product chooses for `strategy` (`STRATEGIES`): `choose_dampening` itself."""
    spec = STRATEGIES[strategy]
    alpha: str | float = paper_alpha if spec.alpha == PAPER_ALPHA else spec.alpha
    return choose_dampening(original, full, forget, request, target, alpha=alpha, cutoff=spec.cutoff)


def dampened_copy(original: nn.Module, full: Importances, forget: Importances,
                  choice: DampeningChoice) -> tuple[nn.Module, dict[str, Any]]:
    """A dampened copy of `original` with the chosen configuration, as the unlearn step makes it."""
    candidate = copy.deepcopy(original)
    report = dampen(candidate, full, forget, alpha=choice.alpha, parameters=choice.parameters)
    selection = choice.selection or {}
    return candidate, {"alpha": choice.alpha, "cutoff": choice.cutoff, "alpha_method": choice.alpha_method,
                       "alpha_assd": choice.alpha_assd, "found": selection.get("found"),
                       "trials": len(selection.get("trials", [])), "fraction_dampened": report.fraction,
                       "selected": report.total_selected}


def dampened_rows(original: nn.Module, full: dict[str, Importances],
                  forgets: dict[str, tuple[Importances, float]], request: ResolvedForgetSet,
                  target: tuple[ForgettingTarget, float], measure: Callable[[nn.Module], dict[str, Any]], *,
                  paper_alpha: float, device: torch.device, keep: dict[str, nn.Module] | None = None
                  ) -> dict[str, dict[str, Any]]:
    """Every strategy as a cached request: {strategy: {measure(candidate)..., seconds, info}}.

    `forgets` and `target` carry the seconds they took: a request's time is the forget pass of the
    strategy's importance method, the target's forward passes (searched strategies only: a fixed α needs
    none), the choice and a dampened copy. With `keep`, the default strategy's candidate is kept there
    (the ladder's repair rungs start from it)."""
    rows = {}
    for name, spec in STRATEGIES.items():
        forget, forget_s = forgets[spec.importances]
        choice, choose_s = timed(partial(choose, name, original, full[spec.importances], forget, request,
                                         target[0], paper_alpha=paper_alpha), device)
        copied = partial(dampened_copy, original, full[spec.importances], forget, choice)
        (model, info), dampen_s = timed(copied, device)
        target_s = target[1] if spec.searched else 0.0
        info.update(forget_pass_s=forget_s, target_s=target_s, choose_s=choose_s, dampen_s=dampen_s)
        rows[name] = {**measure(model), "seconds": forget_s + target_s + choose_s + dampen_s, "info": info}
        if keep is not None and name == DEFAULT_STRATEGY:
            keep[name] = model
        del model
    return rows
