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

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from benchmarks.profiles import Profile  # noqa: E402
from benchmarks.quality import CLASS_FORGET_LIMIT, Scenario, SeedContext, scenarios_of  # noqa: E402
from benchmarks.workbench import BenchData, take  # noqa: E402
from lethe.evaluation import accuracy, entropy, predict_logits  # noqa: E402
from lethe.evaluation.evaluator import DEFAULT_BATCH_SIZE as FORWARD_BATCH_SIZE  # noqa: E402
from lethe.evaluation.mia import calibrated_gap  # noqa: E402
from lethe.unlearning import dampen  # noqa: E402

RETAIN_DROP_LIMIT = 0.02


def _lambdas_for(scenario: Scenario, scenarios: list[Scenario], profile: Profile) -> tuple[float, ...]:
    firsts = {
        next(s.name for s in scenarios if s.kind == kind)
        for kind in ("class", "subject")
        if any(s.kind == kind for s in scenarios)
    }
    return profile.sweep_lambdas if scenario.name in firsts else (1.0,)


def run_sweep(
    profile: Profile, data: BenchData, context: SeedContext, *, device: torch.device
) -> dict[str, Any]:
    scenarios = scenarios_of(profile)
    limit = profile.sweep_eval_limit
    test = take(data.test, limit, seed=0)
    results: dict[str, Any] = {}
    for scenario in scenarios:
        split = context.splits[scenario.name]
        forget = take(split.forget, limit, seed=0)
        retain = take(split.retain, limit, seed=0)
        test_mask = (
            test.labels != scenario.forget_class
            if scenario.kind == "class"
            else torch.ones(len(test), dtype=torch.bool)
        )

        def measure(
            model: torch.nn.Module, forget=forget, retain=retain, test_mask=test_mask, kind=scenario.kind
        ) -> dict[str, float]:
            logits = {
                name: predict_logits(
                    model, s.batches(FORWARD_BATCH_SIZE, with_labels=False), device=device, progress=False
                )
                for name, s in (("forget", forget), ("retain", retain), ("test", test))
            }
            row = {
                "forget_accuracy": accuracy(logits["forget"], forget.labels),
                "retain_accuracy": accuracy(logits["retain"], retain.labels),
                "test_accuracy": accuracy(logits["test"][test_mask], test.labels[test_mask]),
            }
            if kind == "subject":
                features = {k: entropy(v)[:, None].double().numpy() for k, v in logits.items()}
                features["test"] = features["test"][test_mask.numpy()]
                row["member_rate_gap"] = calibrated_gap(
                    features["retain"], features["test"], features["forget"], seed=0, bootstrap=0
                ).gap
            return row

        base = measure(context.original)
        points = []
        for lam in _lambdas_for(scenario, scenarios, profile):
            for alpha in profile.sweep_alphas:
                candidate = copy.deepcopy(context.original)
                report = dampen(candidate, context.full, context.forget[scenario.name], alpha=alpha, lam=lam)
                points.append(
                    {
                        "alpha": float(alpha),
                        "lam": lam,
                        "fraction_dampened": report.fraction,
                        **measure(candidate),
                    }
                )
        results[scenario.name] = {
            "kind": scenario.kind,
            "original": base,
            "points": points,
            "forget_samples": len(forget),
            "eval_samples": len(retain),
        }
    return {
        "alphas": list(profile.sweep_alphas),
        "lambdas": list(profile.sweep_lambdas),
        "eval_limit": limit,
        "scenarios": results,
        "recommendation": recommend(results),
    }


def recommend(results: dict[str, Any]) -> dict[str, Any]:
    """Per scenario, the α values (at λ=1) that meet the class target (forget ≤ 2%, retain drop ≤ 2
    points) or, for subjects, bring the member-rate gap to ≤ 0.05 with retain drop ≤ 2 points; and
    whether any λ < 1 beats λ = 1."""
    per_scenario = {}
    for name, r in results.items():
        base = r["original"]

        def ok(p: dict[str, Any], kind: str = r["kind"], base: dict[str, Any] = base) -> bool:
            kept = base["retain_accuracy"] - p["retain_accuracy"] <= RETAIN_DROP_LIMIT
            if kind == "class":
                return kept and p["forget_accuracy"] <= CLASS_FORGET_LIMIT
            return kept and p.get("member_rate_gap", math.inf) <= 0.05

        at_one = [p for p in r["points"] if p["lam"] == 1.0]
        good = [p["alpha"] for p in at_one if ok(p)]
        lower_lam_good = sorted({p["lam"] for p in r["points"] if p["lam"] < 1.0 and ok(p)})
        per_scenario[name] = {
            "alphas_meeting_target_at_lam_1": good,
            "largest_alpha_meeting_target": max(good) if good else None,
            "lambdas_below_1_meeting_target": lower_lam_good,
        }
    largest = [v["largest_alpha_meeting_target"] for v in per_scenario.values()]
    found = [a for a in largest if a is not None]
    return {
        "per_scenario": per_scenario,
        "common_alpha": (min(found) if found and len(found) == len(largest) else None),
        "spread": (max(found) / min(found)) if len(found) > 1 else None,
    }


def plot_sweep(sweep: dict[str, Any], path: Path) -> Path:
    """One panel per scenario: forget (solid) and retain (dashed) accuracy against α, a line per λ."""
    names = list(sweep["scenarios"])
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes.flat, names, strict=False):
        r = sweep["scenarios"][name]
        lams = sorted({p["lam"] for p in r["points"]})
        for k, lam in enumerate(lams):
            pts = sorted((p for p in r["points"] if p["lam"] == lam), key=lambda p: p["alpha"])
            a = [p["alpha"] for p in pts]
            color = colors[k % len(colors)]
            ax.plot(
                a, [p["forget_accuracy"] for p in pts], "-o", ms=3, color=color, label=f"forget, λ={lam:g}"
            )
            ax.plot(a, [p["retain_accuracy"] for p in pts], "--", color=color, label=f"retain, λ={lam:g}")
            if r["kind"] == "subject":
                ax.plot(a, [p["member_rate_gap"] for p in pts], ":", color=color, label=f"MIA gap, λ={lam:g}")
        ax.axhline(r["original"]["forget_accuracy"], color="grey", lw=0.8, alpha=0.6)
        ax.axvline(10, color="black", lw=0.6, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("α (log)")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"{name} ({r['forget_samples']} forget samples)")
        ax.legend(fontsize=6, loc="lower right")
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes[0][0].set_ylabel("accuracy / member-rate gap")
    fig.suptitle("LFSSD sensitivity to α and λ (seed 0; dotted vertical: the paper's α=10)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
