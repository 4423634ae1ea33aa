"""Quality: how close each unlearning method gets to retraining without the forget set.

Per seed: one original model and its full-data importances (LFSSD and SSD), computed once and
reused by every scenario and method (the product's point); per scenario and seed: a model
retrained from scratch without the forget set (the gold standard), a finetuned copy, and the
dampened copies (SSD with labels; LFSSD with the paper's α, the ASSD α and the searched α).
Each is measured on the same retain sample, forget set and test set.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from benchmarks.profiles import Profile
from benchmarks.speed import d_pass, pick_subjects
from benchmarks.trained import Recipe, finetuned, train_or_load
from benchmarks.workbench import BenchData, Stopwatch, mean_std, section, take
from lethe.data import ForgetSplit, SampleSet, resolve_forget_set
from lethe.evaluation import model_metrics, predict_logits
from lethe.evaluation.evaluator import DEFAULT_BATCH_SIZE as FORWARD_BATCH_SIZE
from lethe.steps.evaluate import Request
from lethe.steps.unlearn import SEARCH_HIGH, SEARCH_LOW, SEARCH_STEPS, make_target
from lethe.unlearning import Importances, calibrate_alpha, dampen, search_alpha

METHODS = ("original", "retrained", "finetune", "ssd", "lfssd_paper", "lfssd_assd", "lfssd_search")
METHOD_LABELS = {
    "original": "original",
    "retrained": "retrained (gold)",
    "finetune": "finetune",
    "ssd": "SSD (labels, α=10)",
    "lfssd_paper": "LFSSD α=10",
    "lfssd_assd": "LFSSD ASSD α",
    "lfssd_search": "LFSSD searched α",
}
METRICS = (
    "retain_accuracy",
    "test_accuracy",
    "forget_accuracy",
    "forgotten_class_test_accuracy",
    "reference_member_rate",
    "calibrated_member_rate",
    "member_rate_gap",
    "loss_member_rate_gap",
    "seconds",
)
DAMPENING_METHODS = ("ssd", "lfssd_paper", "lfssd_assd", "lfssd_search")
CLASS_FORGET_LIMIT = 0.02  # class: forget accuracy at most 2%
CLASS_RETAIN_DROP_LIMIT = 0.02  # class: retained-class accuracy within 2 points of the original
SUBJECT_FORGET_LIMIT = 0.02  # subject: forget accuracy within ±2 points of the retrained model
SUBJECT_MEMBER_LIMIT = 0.05  # subject: member rate within ±0.05 of the retrained model


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "class" | "subject"
    forget_class: int | None = None
    size: int | None = None

    def split(self, train: SampleSet, seed: int) -> ForgetSplit:
        if self.kind == "class":
            return resolve_forget_set(train, forget_class=self.forget_class)
        return resolve_forget_set(train, subjects=pick_subjects(train, self.size, seed=seed))


def scenarios_of(profile: Profile) -> list[Scenario]:
    return [Scenario(f"class-{c}", "class", forget_class=c) for c in profile.forget_classes] + [
        Scenario(f"subject-{n}", "subject", size=n) for n in profile.subject_sizes
    ]


@dataclass
class SeedContext:
    """What the sensitivity sweep reuses from seed 0: the original, its importances, the splits."""

    original: nn.Module
    full: Importances
    forget: dict[str, Importances]
    splits: dict[str, ForgetSplit]


class Measurer:
    """Accuracies and both membership attacks of one model on one scenario's fixed samples."""

    def __init__(
        self,
        split: ForgetSplit,
        test: SampleSet,
        scenario: Scenario,
        *,
        retain_limit: int | None,
        test_limit: int | None,
        seed: int,
        device: torch.device,
    ) -> None:
        test = take(test, test_limit, seed=seed)
        self.sets = {
            "retain": take(split.retain, retain_limit, seed=seed),
            "forget": split.forget,
            "test": test,
        }
        self.labels = {name: samples.labels for name, samples in self.sets.items()}
        self.test_mask = (
            test.labels != scenario.forget_class
            if scenario.kind == "class"
            else torch.ones(len(test), dtype=torch.bool)
        )
        self.seed, self.device = seed, device

    def __call__(self, model: nn.Module) -> dict[str, float]:
        logits = {
            name: predict_logits(
                model,
                samples.batches(FORWARD_BATCH_SIZE, with_labels=False),
                device=self.device,
                progress=False,
            )
            for name, samples in self.sets.items()
        }
        raw = model_metrics(logits, self.labels, test_mask=self.test_mask, seed=self.seed)
        return {
            "retain_accuracy": raw["retain_accuracy"],
            "test_accuracy": raw["test_accuracy"],
            "forget_accuracy": raw["forget_accuracy"],
            "forgotten_class_test_accuracy": raw.get("forgotten_class_test_accuracy"),
            "reference_member_rate": raw["mia"]["reference_member_rate"],
            "calibrated_member_rate": raw["mia"]["forget_member_rate"],
            "holdout_member_rate": raw["mia"]["holdout_member_rate"],
            "member_rate_gap": raw["mia"]["gap"],
            "loss_member_rate_gap": raw["mia_loss"]["gap"],
        }


def _dampened(
    original: nn.Module, full: Importances, forget: Importances, alpha: float, lam: float = 1.0
) -> tuple[nn.Module, dict[str, Any]]:
    candidate = copy.deepcopy(original)
    report = dampen(candidate, full, forget, alpha=alpha, lam=lam)
    return candidate, {
        "alpha": alpha,
        "lam": lam,
        "fraction_dampened": report.fraction,
        "selected": report.total_selected,
    }


def _timed_method(
    fn: Callable[[], tuple[nn.Module, dict[str, Any]]], device: torch.device, extra_seconds: float = 0.0
) -> tuple[nn.Module, dict[str, Any], float]:
    with Stopwatch(device) as watch:
        model, info = fn()
    return model, info, watch.seconds + extra_seconds


def run_scenario(
    scenario: Scenario,
    seed: int,
    *,
    data: BenchData,
    original: Any,
    recipe: Recipe,
    full: dict[str, Importances],
    profile: Profile,
    device: torch.device,
    use_cache: bool,
) -> tuple[dict[str, Any], Importances, ForgetSplit]:
    """Every method on one scenario and seed: {method: {metrics..., seconds, info}}."""
    split = scenario.split(data.train, seed)
    measure = Measurer(
        split,
        data.test,
        scenario,
        retain_limit=profile.eval_retain_limit,
        test_limit=profile.eval_test_limit,
        seed=seed,
        device=device,
    )
    b = profile.importance_batch_size
    rows: dict[str, Any] = {}

    def record(method: str, model: nn.Module, seconds: float, info: dict[str, Any] | None = None) -> None:
        rows[method] = {**measure(model), "seconds": seconds, "info": info or {}}

    record("original", original.model, original.seconds, {"cached": original.cached})
    retrained = train_or_load(recipe, split.retain, seed=seed, device=device, use_cache=use_cache)
    record("retrained", retrained.model, retrained.seconds, {"cached": retrained.cached})
    del retrained
    tuned, tuned_s = finetuned(
        original.model,
        take(split.retain, profile.finetune_limit, seed=seed),
        epochs=profile.finetune_epochs,
        seed=seed,
        device=device,
    )
    record(
        "finetune",
        tuned,
        tuned_s,
        {
            "epochs": profile.finetune_epochs,
            "samples": min(len(split.retain), profile.finetune_limit or 10**12),
        },
    )
    del tuned

    forget_ssd, ssd_s = d_pass(original.model, split.forget, b, device, method="ssd")
    model, info, seconds = _timed_method(
        lambda: _dampened(original.model, full["ssd"], forget_ssd, profile.paper_alpha), device, ssd_s
    )
    record("ssd", model, seconds, info)

    forget, forget_s = d_pass(original.model, split.forget, b, device)
    model, info, seconds = _timed_method(
        lambda: _dampened(original.model, full["lfssd"], forget, profile.paper_alpha), device, forget_s
    )
    record("lfssd_paper", model, seconds, info)

    def assd() -> tuple[nn.Module, dict[str, Any]]:
        alpha = calibrate_alpha(full["lfssd"], forget, n_full=len(data.train), n_forget=len(split.forget))
        return _dampened(original.model, full["lfssd"], forget, alpha)

    model, info, seconds = _timed_method(assd, device, forget_s)
    record("lfssd_assd", model, seconds, info)

    def searched() -> tuple[nn.Module, dict[str, Any]]:
        request = Request(
            dataset=data.train.name,
            scenario=scenario.kind,
            train=data.train,
            test=data.test,
            split=split,
            forget_class=scenario.forget_class,
        )
        target = make_target(original.model, request, device=str(device), seed=seed)
        result = search_alpha(
            original.model,
            full["lfssd"],
            forget,
            target,
            low=SEARCH_LOW,
            high=SEARCH_HIGH,
            steps=SEARCH_STEPS,
        )
        model, info = _dampened(original.model, full["lfssd"], forget, result.alpha or SEARCH_LOW)
        return model, {**info, "found": result.found, "trials": len(result.trials)}

    model, info, seconds = _timed_method(searched, device, forget_s)
    record("lfssd_search", model, seconds, info)
    for method in DAMPENING_METHODS:
        rows[method]["info"]["forget_pass_s"] = ssd_s if method == "ssd" else forget_s
    return (
        {
            "forget_samples": len(split.forget),
            "retain_samples": len(split.retain),
            "eval_samples": {k: len(v) for k, v in measure.sets.items()},
            "methods": rows,
        },
        forget,
        split,
    )


def run_quality(
    profile: Profile, data: BenchData, *, device: torch.device, use_cache: bool = True
) -> tuple[dict[str, Any], SeedContext]:
    """All seeds and scenarios; returns the results (per seed and summarised) and seed 0's context."""
    recipe = Recipe(arch=profile.arch, epochs=profile.epochs)
    scenarios = scenarios_of(profile)
    per_seed: dict[str, dict[str, Any]] = {s.name: {} for s in scenarios}
    setup: list[dict[str, Any]] = []
    context: SeedContext | None = None
    b = profile.importance_batch_size
    for seed in range(profile.seeds):
        with section(f"quality seed {seed}: original model and full-data importances"):
            original = train_or_load(recipe, data.train, seed=seed, device=device, use_cache=use_cache)
            full_lfssd, lfssd_s = d_pass(original.model, data.train, b, device)
            full_ssd, ssd_s = d_pass(original.model, data.train, b, device, method="ssd")
        setup.append(
            {
                "seed": seed,
                "train_seconds": original.seconds,
                "cached": original.cached,
                "d_pass_lfssd_s": lfssd_s,
                "d_pass_ssd_s": ssd_s,
            }
        )
        full = {"lfssd": full_lfssd, "ssd": full_ssd}
        forgets, splits = {}, {}
        for scenario in scenarios:
            with section(f"quality seed {seed}: {scenario.name}"):
                result, forgets[scenario.name], splits[scenario.name] = run_scenario(
                    scenario,
                    seed,
                    data=data,
                    original=original,
                    recipe=recipe,
                    full=full,
                    profile=profile,
                    device=device,
                    use_cache=use_cache,
                )
            per_seed[scenario.name][str(seed)] = result
        if seed == 0:
            context = SeedContext(original.model, full_lfssd, forgets, splits)
    assert context is not None
    summary = {s.name: summarise(per_seed[s.name]) for s in scenarios}
    targets = [row for s in scenarios for row in check_targets(s, summary[s.name])]
    return {
        "recipe": recipe.__dict__,
        "scenarios": [s.__dict__ for s in scenarios],
        "methods": list(METHODS),
        "method_labels": METHOD_LABELS,
        "setup": setup,
        "summary": summary,
        "targets": targets,
        "per_seed": per_seed,
    }, context


def summarise(by_seed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over seeds of each metric, and of each method's |metric − retrained's| per seed."""
    seeds = sorted(by_seed)
    out: dict[str, Any] = {}
    for method in METHODS:
        rows = [by_seed[s]["methods"][method] for s in seeds]
        gold = [by_seed[s]["methods"]["retrained"] for s in seeds]
        original = [by_seed[s]["methods"]["original"] for s in seeds]
        metrics = {m: mean_std([r.get(m) for r in rows]) for m in METRICS}
        distance = {
            m: mean_std(
                [
                    abs(r[m] - g[m]) if r.get(m) is not None and g.get(m) is not None else None
                    for r, g in zip(rows, gold, strict=True)
                ]
            )
            for m in METRICS
            if m != "seconds"
        }
        drop = {
            m: mean_std([o[m] - r[m] for r, o in zip(rows, original, strict=True)])
            for m in ("retain_accuracy", "test_accuracy")
        }
        alphas = [r["info"].get("alpha") for r in rows if r["info"].get("alpha") is not None]
        out[method] = {
            "metrics": metrics,
            "distance_to_retrained": distance,
            "drop_from_original": drop,
            "alpha": mean_std(alphas) if alphas else None,
        }
    return out


def check_targets(scenario: Scenario, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets for every forgetting method, with how far each misses (0 when met)."""
    rows = []
    for method in ("finetune", *DAMPENING_METHODS):
        s = summary[method]
        if scenario.kind == "class":
            checks = [
                ("forget_accuracy", s["metrics"]["forget_accuracy"]["mean"], CLASS_FORGET_LIMIT),
                (
                    "retain_accuracy_drop",
                    s["drop_from_original"]["retain_accuracy"]["mean"],
                    CLASS_RETAIN_DROP_LIMIT,
                ),
                (
                    "test_accuracy_drop",
                    s["drop_from_original"]["test_accuracy"]["mean"],
                    CLASS_RETAIN_DROP_LIMIT,
                ),
            ]
        else:
            d = s["distance_to_retrained"]
            checks = [
                ("forget_accuracy_distance", d["forget_accuracy"]["mean"], SUBJECT_FORGET_LIMIT),
                ("reference_member_rate_distance", d["reference_member_rate"]["mean"], SUBJECT_MEMBER_LIMIT),
                (
                    "calibrated_member_rate_distance",
                    d["calibrated_member_rate"]["mean"],
                    SUBJECT_MEMBER_LIMIT,
                ),
            ]
        for criterion, value, limit in checks:
            met = value is not None and value <= limit + 1e-9  # float noise at the limit is a pass
            rows.append(
                {
                    "scenario": scenario.name,
                    "method": method,
                    "criterion": criterion,
                    "value": value,
                    "limit": limit,
                    "met": met,
                    "miss_by": 0.0 if met or value is None else value - limit,
                }
            )
    return rows
