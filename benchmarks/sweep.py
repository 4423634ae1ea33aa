"""α/λ sensitivity: forget, retain and test accuracy of LFSSD over a grid, with a plot.

Uses seed 0's original model and importances from the quality run (nothing is recomputed but
forward passes). λ is swept on the first class scenario and the first subject scenario; the
other scenarios are swept in α at λ=1.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import torch

from benchmarks.profiles import Profile
from benchmarks.quality import Scenario, SeedContext, scenarios_of
from benchmarks.workbench import BenchData, take
from lethe.evaluation import accuracy, entropy, load_thresholds, predict_logits
from lethe.evaluation.evaluator import DEFAULT_BATCH_SIZE as FORWARD_BATCH_SIZE
from lethe.evaluation.mia import calibrated_gap
from lethe.unlearning import dampen

GATE = load_thresholds()  # the targets are the gate's: forget accuracy or member-rate gap, retain drop


def _lambdas_for(scenario: Scenario, scenarios: list[Scenario], profile: Profile) -> tuple[float, ...]:
    firsts = {next(s.name for s in scenarios if s.kind == kind) for kind in {s.kind for s in scenarios}}
    return profile.sweep_lambdas if scenario.name in firsts else (1.0,)


def run_sweep(profile: Profile, data: BenchData, context: SeedContext, *,
              device: torch.device) -> dict[str, Any]:
    scenarios = scenarios_of(profile)
    limit = profile.sweep_eval_limit
    test = take(data.test, limit, seed=0)
    results: dict[str, Any] = {}
    for scenario in scenarios:
        split = context.splits[scenario.name]
        sets = {"forget": take(split.forget, limit, seed=0), "retain": take(split.retain, limit, seed=0)}
        sets["test"] = test
        mask = torch.ones(len(test), dtype=torch.bool)  # the test samples scored (the retained classes)
        if scenario.kind == "class":
            mask = test.labels != scenario.forget_class

        def measure(model: torch.nn.Module, sets: dict = sets, mask: torch.Tensor = mask,
                    kind: str = scenario.kind) -> dict[str, float]:
            logits = {name: predict_logits(model, s.batches(FORWARD_BATCH_SIZE, with_labels=False),
                                           device=device, progress=False) for name, s in sets.items()}
            logits["test"] = logits["test"][mask]
            labels = {name: s.labels for name, s in sets.items()} | {"test": test.labels[mask]}
            row = {f"{name}_accuracy": accuracy(logits[name], labels[name]) for name in sets}
            if kind == "subject":
                features = {k: entropy(v)[:, None].double().numpy() for k, v in logits.items()}
                row["member_rate_gap"] = calibrated_gap(features["retain"], features["test"],
                                                        features["forget"], seed=0, bootstrap=0).gap
            return row

        points = []
        for lam in _lambdas_for(scenario, scenarios, profile):
            for alpha in profile.sweep_alphas:
                candidate = copy.deepcopy(context.original)
                report = dampen(candidate, context.full, context.forget[scenario.name], alpha=alpha, lam=lam)
                points.append({"alpha": float(alpha), "lam": lam, "fraction_dampened": report.fraction,
                               **measure(candidate)})
        results[scenario.name] = {"kind": scenario.kind, "original": measure(context.original),
                                  "points": points, "forget_samples": len(sets["forget"]),
                                  "eval_samples": len(sets["retain"])}
    return {"alphas": list(profile.sweep_alphas), "lambdas": list(profile.sweep_lambdas), "eval_limit": limit,
            "scenarios": results, "recommendation": recommend(results, profile.paper_alpha)}


def recommend(results: dict[str, Any], paper_alpha: float = 10.0) -> dict[str, Any]:
    """Per scenario, the α values (at λ=1) that meet the class target (forget ≤ the gate's 5%, retain
    drop ≤ the gate's 2 points) or, for subjects, bring the member-rate gap to ≤ the gate's 0.05 with the
    same retain drop; and what λ < 1 changes (the README words the advice that follows)."""
    per_scenario = {}
    lam_effect: dict[float, list[float]] = {}
    for name, r in results.items():
        base = r["original"]

        def ok(p: dict[str, Any], kind: str = r["kind"], base: dict[str, Any] = base) -> bool:
            kept = base["retain_accuracy"] - p["retain_accuracy"] <= GATE.retain_accuracy_drop_max
            if kind == "class":
                return kept and p["forget_accuracy"] <= GATE.class_forget_accuracy_max
            return kept and p.get("member_rate_gap", math.inf) <= GATE.subject_member_rate_gap_max

        at_one = {p["alpha"]: p for p in r["points"] if p["lam"] == 1.0}
        good = sorted(a for a, p in at_one.items() if ok(p))
        for p in r["points"]:
            if p["lam"] < 1.0 and p["alpha"] in at_one:
                change = p["retain_accuracy"] - at_one[p["alpha"]]["retain_accuracy"]
                lam_effect.setdefault(p["lam"], []).append(change)
        per_scenario[name] = {"alphas_meeting_target_at_lam_1": good,
                              "largest_alpha_meeting_target": max(good) if good else None,
                              "paper_alpha_meets_target": paper_alpha in good,
                              "lambdas_below_1_meeting_target": sorted({p["lam"] for p in r["points"]
                                                                        if p["lam"] < 1.0 and ok(p)})}
    found = [v["largest_alpha_meeting_target"] for v in per_scenario.values()
             if v["largest_alpha_meeting_target"] is not None]
    return {"per_scenario": per_scenario, "spread": max(found) / min(found) if len(found) > 1 else None,
            "paper_alpha_meets_target": sum(v["paper_alpha_meets_target"] for v in per_scenario.values()),
            "lambda_below_1_only": [n for n, v in per_scenario.items() if v["lambdas_below_1_meeting_target"]
                                    and v["largest_alpha_meeting_target"] is None],
            "retain_change_vs_lam_1": {lam: sum(v) / len(v) for lam, v in sorted(lam_effect.items())}}


def plot_sweep(sweep: dict[str, Any], path: Path) -> Path:
    """One panel per scenario: forget (solid) and retain (dashed) accuracy against α, a line per λ."""
    from matplotlib import rcParams
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    names = list(sweep["scenarios"])
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(4.6 * cols, 3.6 * rows))  # no pyplot: no global state, no backend
    axes = fig.subplots(rows, cols, squeeze=False)
    colors = rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes.flat, names, strict=False):
        r = sweep["scenarios"][name]
        lams = sorted({p["lam"] for p in r["points"]})
        for k, lam in enumerate(lams):
            pts = sorted((p for p in r["points"] if p["lam"] == lam), key=lambda p: p["alpha"])
            a = [p["alpha"] for p in pts]
            color = colors[k % len(colors)]
            ax.plot(a, [p["forget_accuracy"] for p in pts], "-o", ms=3, color=color,
                    label=f"forget, λ={lam:g}")
            ax.plot(a, [p["retain_accuracy"] for p in pts], "--", color=color, label=f"retain, λ={lam:g}")
            if r["kind"] == "subject":
                ax.plot(a, [p["member_rate_gap"] for p in pts], ":", color=color, label=f"MIA gap, λ={lam:g}")
        ax.axhline(r["original"]["forget_accuracy"], color="grey", lw=0.8, alpha=0.6)
        ax.axvline(10, color="black", lw=0.6, ls=":")
        ax.set(xscale="log", xticks=sweep["alphas"], xlabel="α (log)", ylim=(-0.05, 1.05),
               title=f"{name} ({r['forget_samples']} forget samples)")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="x", labelsize=7)
        ax.legend(fontsize=6, loc="lower right")
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes[0][0].set_ylabel("accuracy / member-rate gap")
    fig.suptitle("LFSSD sensitivity to α and λ (seed 0; dotted vertical: the paper's α=10)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
