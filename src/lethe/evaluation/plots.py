"""PNG plots for the reviewer (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

SPLIT_COLOURS = {"retain": "tab:blue", "forget": "tab:red", "test": "tab:green"}


@functools.cache
def _pyplot() -> Any:
    """matplotlib's pyplot on Agg, set up when the first plot is drawn (not when lethe.evaluation is
    imported: matplotlib costs about a second)."""
    import matplotlib

    matplotlib.use("Agg")  # headless: containers and CI have no display
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    """Lay out, write (creating the folder) and close a figure: every plot ends the same way."""
    plt = _pyplot()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_entropy_distributions(
    before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor], path: str | Path,
    *, num_classes: int | None = None,
) -> Path:
    """Histograms of softmax entropy per split (retain/forget/test), parent left, candidate right."""
    plt = _pyplot()
    path = Path(path)
    values = [np.asarray(v, dtype=float) for d in (before, after) for v in d.values() if len(v)]
    top = float(np.log(num_classes)) if num_classes else max((float(v.max()) for v in values), default=1.0)
    bins = np.linspace(0.0, max(top, 1e-6), 41)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (title, splits) in zip(axes, (("parent (before)", before), ("candidate (after)", after)),
                                   strict=True):
        for split, value in splits.items():
            if len(value):
                # Clip: a uniform softmax's entropy can exceed log K by float rounding.
                clipped = np.clip(np.asarray(value, dtype=float), bins[0], bins[-1])
                ax.hist(clipped, bins=bins, density=True, histtype="stepfilled", alpha=0.35,
                        color=SPLIT_COLOURS.get(split), label=f"{split} (n={len(value)})")
        ax.set_title(title)
        ax.set_xlabel("softmax entropy (nats)")
        ax.legend()
    axes[0].set_ylabel("density")
    fig.suptitle("Prediction entropy: forgotten samples should look like test data (or be uncertain)")
    return _save(fig, path)


def dampened_share_per_layer(report: Mapping[str, Any]) -> dict[str, float]:
    """Share of dampened elements per layer (module), from a DampeningReport.to_dict()."""
    selected: dict[str, int] = {}
    elements: dict[str, int] = {}
    for name, count in report["elements"].items():
        layer = name.rsplit(".", 1)[0] if "." in name else name
        elements[layer] = elements.get(layer, 0) + int(count)
        selected[layer] = selected.get(layer, 0) + int(report["selected"].get(name, 0))
    return {layer: selected[layer] / max(elements[layer], 1) for layer in elements}


def plot_dampening(report: Mapping[str, Any], path: str | Path) -> Path:
    """Horizontal bars: the share of each layer's parameters that dampening changed."""
    plt = _pyplot()
    path = Path(path)
    shares = dampened_share_per_layer(report)
    layers = list(shares)
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.3 * len(layers) + 1)))
    ax.barh(range(len(layers)), [100 * shares[layer] for layer in layers], color="tab:purple")
    ax.set_yticks(range(len(layers)), layers)
    ax.invert_yaxis()  # first layer on top
    ax.set_xlabel("dampened elements (% of the layer)")
    ax.set_title(f"Dampening: α={report['alpha']:.4g}, λ={report['lam']:.3g}, "
                 f"{report.get('total_selected', sum(report['selected'].values()))} elements in total")
    return _save(fig, path)


def plot_selection(selection: Mapping[str, Any], path: str | Path) -> Path:
    """Every trial of the dampening's selection: retained agreement against the forgetting criterion,
    one colour per cut-off, the target's limit as a line and the chosen configuration marked."""
    plt = _pyplot()
    path = Path(path)
    trials = list(selection.get("trials", []))
    criterion = selection.get("criterion") or "forgetting criterion"
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for index, cutoff in enumerate(dict.fromkeys(t["cutoff"] for t in trials)):
        # A missed trial may carry no retain agreement: the search measures it only where the target is met.
        mine = [t for t in trials if t["cutoff"] == cutoff and t.get("retain_agreement") is not None]
        ax.scatter([t["value"] for t in mine], [100 * t["retain_agreement"] for t in mine], s=18,
                   color=plt.get_cmap("tab10")(index % 10), alpha=0.8,
                   label=f"from {cutoff}" if cutoff != "all" else "every layer")
    chosen = [t for t in trials
              if t["cutoff"] == selection.get("cutoff") and t["alpha"] == selection.get("alpha")]
    if chosen:
        ax.scatter([chosen[-1]["value"]], [100 * chosen[-1]["retain_agreement"]], marker="*", s=260,
                   color="black", zorder=5,
                   label=f"chosen: {selection.get('cutoff')}, α={float(selection.get('alpha')):.3g}")
    if selection.get("limit") is not None:
        ax.axvline(float(selection["limit"]), color="tab:red", linestyle="--", linewidth=1,
                   label="target limit")
    ax.set_xlabel(f"{criterion} (met at or left of the limit)")
    ax.set_ylabel("retained agreement with the parent (%)")
    ax.set_title("Where and how much to dampen: every trial of the search")
    ax.legend(fontsize=8)
    return _save(fig, path)


#: At most this many requests get a row in the per-example plot (the metrics hold every request).
MAX_PLOTTED_REQUESTS = 8


def plot_per_example(scores: Mapping[str, Mapping[str, Any]], thresholds: Mapping[float, Mapping[str, float]],
                     requests: Mapping[str, Any], outcomes: Mapping[str, str], path: str | Path) -> Path:
    """Per request (rows) and model (parent left, candidate right): the forget samples' per-example
    scores (red ticks) against the reference distribution (out models: N(0, 1) by construction of the
    score; held-out non-members: grey histogram), with the gate's thresholds at each FPR (dashed)."""
    plt = _pyplot()
    path = Path(path)
    shown = list(requests)[:MAX_PLOTTED_REQUESTS]
    fig, axes = plt.subplots(len(shown), 2, figsize=(11, 2.6 * len(shown) + 0.6), squeeze=False, sharex=True)
    every = [np.asarray(v[split], dtype=float) for v in scores.values() for split in ("forget", "test")]
    finite = np.concatenate([v[np.isfinite(v)] for v in every]) if every else np.zeros(1)
    low, high = min(-4.0, float(finite.min())), max(4.0, float(finite.max()))
    grid = np.linspace(low, high, 200)
    for row, request_id in enumerate(shown):
        indices = np.asarray(requests[request_id], dtype=int)
        for col, role in enumerate(("parent", "candidate")):
            ax = axes[row][col]
            non_members = np.asarray(scores[role]["test"], dtype=float)
            ax.hist(non_members[np.isfinite(non_members)], bins=40, range=(low, high), density=True,
                    color="tab:gray", alpha=0.4, label="held-out non-members")
            ax.plot(grid, np.exp(-grid ** 2 / 2) / np.sqrt(2 * np.pi), color="black", linewidth=1,
                    label="reference models (sample out)")
            forget = np.asarray(scores[role]["forget"], dtype=float)[indices]
            forget = forget[np.isfinite(forget)]
            ax.plot(forget, np.full(len(forget), 0.02), "|", color="tab:red", markersize=14, mew=2,
                    label=f"forget samples (n={len(forget)})")
            for (fpr, by_role), style in zip(sorted(thresholds.items()), ("--", ":", "-."), strict=False):
                ax.axvline(by_role[role], color="tab:red", linestyle=style, linewidth=1,
                           label=f"threshold at {fpr:.0%} FPR")
            outcome = outcomes.get(request_id, "?").replace("_", " ")
            ax.set_title(f"{role}: request {request_id[:16]} — {outcome}", fontsize=9)
            if row == len(shown) - 1:
                ax.set_xlabel("per-example score (z against reference models where the sample was out)")
            if row == 0 and col == 1:
                ax.legend(fontsize=7)
    more = f" (first {len(shown)} of {len(requests)} requests)" if len(requests) > len(shown) else ""
    fig.suptitle(f"Per-example membership test: flagged = right of the threshold{more}")
    return _save(fig, path)


def plot_gate_checks(checks: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """One row per gate check: its value (green: passed, red: failed) against its limit (dashed line)."""
    plt = _pyplot()
    path = Path(path)
    fig, axes = plt.subplots(len(checks), 1, figsize=(8, 0.9 * len(checks) + 1), squeeze=False)
    for ax, check in zip(axes[:, 0], checks, strict=True):
        value, limit = float(check["value"]), float(check["limit"])
        shown = value if np.isfinite(value) else 0.0
        ax.barh([0], [shown], color="tab:green" if check["passed"] else "tab:red", height=0.6)
        ax.axvline(limit, color="black", linestyle="--", linewidth=1)
        span = max(abs(shown), abs(limit), 1e-3) * 1.3
        ax.set_xlim(min(0.0, shown, limit) - 0.05 * span, span)
        ax.set_yticks([])
        text = f"{value:.4g}" if np.isfinite(value) else "not measured"
        ax.set_title(f"{check['name'].replace('_', ' ')}: {text} (limit {limit:.4g}) — "
                     f"{'pass' if check['passed'] else 'FAIL'}", fontsize=9, loc="left")
    fig.suptitle("The gate's checks against their limits (a check passes at or left of the dashed line)")
    return _save(fig, path)
