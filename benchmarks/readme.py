"""benchmarks/README.md from the result JSON files: tables regenerated, the prose kept.

The hand-written discussion lives between the PROSE markers and survives regeneration; every
number outside it comes from the JSON files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.targets import SPEED_TARGETS

PROSE_BEGIN, PROSE_END = "<!-- prose: kept when the tables are regenerated -->", "<!-- /prose -->"
DEFAULT_PROSE = "_(Written after a full run: where LFSSD misses, and by how much.)_"


def _load(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / name
    return json.loads(path.read_text()) if path.is_file() else None


def _pct(stat: dict[str, Any] | None, digits: int = 1) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    text = f"{100 * stat['mean']:.{digits}f}"
    return text + (f" ± {100 * stat['std']:.{digits}f}" if stat.get("n", 0) > 1 else "")


def _num(stat: dict[str, Any] | None, digits: int = 2) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    text = f"{stat['mean']:.{digits}f}"
    return text + (f" ± {stat['std']:.{digits}f}" if stat.get("n", 0) > 1 else "")


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _ratio(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 2:
        return f"{value:.3f}×"
    return f"{value:.1f}×" if value < 100 else f"{value:,.0f}×"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _machine_line(result: dict[str, Any]) -> str:
    m = result.get("machine", {})
    gpu = f", {m['gpu']}" if m.get("gpu") else ""
    return (
        f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores ({m.get('torch_threads', '?')} torch threads)"
        f"{gpu}, device `{m.get('device', '?')}`, torch {m.get('torch', '?')}, Python {m.get('python', '?')}"
        + (
            f"; load average {m['load_average_1min']} at the start"
            if m.get("load_average_1min") is not None
            else ""
        )
    )


def speed_section(speed: dict[str, Any]) -> list[str]:
    h = speed["headline"]
    lines = ["## Speed", "", f"Measured {speed['date']} on {_machine_line(speed)}.", ""]
    lines += _table(
        ["ratio", "measured", "target", "met"],
        [
            [
                f"`{row['key']}`: {row['what']}",
                _ratio(h.get(row["key"])),
                row["target"],
                "yes" if row.get("met") else "**no**",
            ]
            for row in speed["targets"]
        ],
    )
    r = speed.get("request")
    if r:
        lines += [
            "",
            f"**A request of {r['forget_samples']} forget samples** (`{speed['arch']}`, "
            f"|D| = {r['train_samples']:,}, batch size {r['batch_size']}):",
            "",
        ]
        lines += _table(
            ["", "seconds"],
            [
                ["D pass (full-data importances, once per model version)", _seconds(r["d_pass_s"])],
                [
                    "cached request, ASSD α: load D + Df pass + α + dampen a copy",
                    _seconds(r["cached_request_s"]),
                ],
                [
                    "… of which: load D / Df pass / dampen a copy",
                    " / ".join(
                        _seconds(r["parts"][k]) for k in ("load_d_s", "forget_pass_s", "dampen_copy_s")
                    ),
                ],
                ["same request recomputing D", _seconds(r["recomputed_request_s"])],
                [
                    "cached request with lethe's default choice of cut-off and α "
                    f"({r['search_trials']} trials of forward passes)",
                    _seconds(r["search_request_s"]),
                ],
                ["same, recomputing D", _seconds(r["search_recomputed_request_s"])],
            ],
        )
        lines += [
            "",
            f"With the default choice the cached request is {_ratio(r['search_cached_speedup'])} faster "
            "than recomputing D (the search's forward passes, not the importances, dominate it).",
        ]
    rt = speed.get("retrain")
    if rt:
        m = rt["measured"]
        how = (
            f"measured ({m['scenario']}, mean of {m['seeds']} seed(s))"
            if rt.get("retrain_measured")
            else "scaled from the measured training throughput "
            f"({rt['training_seconds_per_1000_sample_epochs']:.2f} s per 1,000 image-epochs, the median over "
            "every training of the quality run)"
        )
        lines += [
            "",
            f"**Unlearning against retraining from scratch** (recipe: {rt['recipe']}): retraining on "
            f"{rt['retrain_samples']:,} images takes {_seconds(rt['retrain_s'])}, {how}; the request with D "
            f"cached takes {_seconds(rt['unlearn_assd_s'])} with the ASSD α ({_ratio(rt['speedup_assd'])}) "
            "and "
            f"{_seconds(rt['unlearn_search_s'])} with the default choice ({_ratio(rt['speedup_search'])}). "
            "In the "
            f"quality run ({m['train_samples']:,} training images, {m['scenario']}): retraining "
            f"{_seconds(m['retrain_s'])}, ASSD request {_seconds(m['unlearn_assd_s'])} "
            f"({_ratio(m['speedup_assd'])}), default choice {_seconds(m['unlearn_search_s'])} "
            f"({_ratio(m['speedup_search'])}).",
        ]
    sc = speed.get("scaling")
    if sc:
        fit = sc["fit"]
        lines += [
            "",
            "**D-pass time against |D|** (linear least squares: "
            f"{fit['seconds_per_1000_samples']:.2f} s per 1,000 samples + {fit['intercept_s']:.2f} s, "
            f"R² = {fit['r2']:.4f}, largest residual {100 * fit['max_relative_residual']:.1f}%):",
            "",
        ]
        lines += _table(
            ["|D|", "seconds", "samples/s"],
            [[f"{p['samples']:,}", f"{p['seconds']:.2f}", f"{p['samples_per_s']:.0f}"] for p in sc["points"]],
        )
        s = sc["shards"]
        lines += [
            "",
            f"**{s['k']} merged shards against one pass** over {s['samples']:,} samples: max abs "
            f"difference {s['max_abs_diff']:.2e} (relative to the largest value {s['max_rel_diff']:.1e}; "
            f"bit-identical: {'yes' if s['bit_identical'] else 'no, float rounding'}); shards "
            f"{' + '.join(f'{t:.1f}' for t in s['shard_seconds'])} s in sequence, merge "
            f"{_seconds(s['merge_seconds'])}, one pass {s['one_pass_seconds']:.1f} s; on {s['k']} "
            f"nodes the pass would take {s['parallel_seconds_ideal']:.1f} s.",
        ]
    ev = speed.get("evaluation")
    if ev and ev.get("speedup") is not None:
        lines += [
            "",
            f"**Evaluation** of {ev['samples']:,} samples (forward passes, accuracy, both membership "
            f"attacks with entropy and loss features): {ev['batched_total_with_mia_s']:.1f} s at batch size "
            f"{ev['batch_size']} (forward {ev['batched_forward_s']:.1f} s) against "
            f"{ev['bs1_total_with_mia_s_scaled']:.0f} s at batch size 1 (forward measured on "
            f"{ev['bs1_measured_samples']:,} samples and scaled): {ev['speedup']:.1f}× "
            f"(forward alone {ev['speedup_forward']:.1f}×).",
        ]
    ov = speed.get("importance_overhead")
    if ov:
        lines += [
            "",
            "**Importance pass against a bare forward+backward** over the same batches (median of "
            "interleaved runs):",
            "",
        ]
        lines += _table(
            ["model", "batches × size", "bare", "importances", "ratio"],
            [
                [
                    row["model"],
                    f"{row['batches']} × {row['batch_size']}",
                    f"{row['bare_seconds_median']:.3f} s",
                    f"{row['importances_seconds_median']:.3f} s",
                    f"{row['ratio']:.3f}",
                ]
                for row in ov
            ],
        )
    ps = speed.get("per_sample")
    if ps:
        lines += [
            "",
            f"**Per-sample pass** (lethe's default semantics) over {ps['samples']:,} samples: "
            f"{ps['per_sample_samples_per_s']:.0f} samples/s against {ps['batched_samples_per_s']:.0f} "
            f"for the batch-mean pass at batch size {ps['batch_size']}: per-sample importances cost "
            f"{ps['per_sample_cost_ratio']:.2f}× the papers' pass.",
        ]
    return lines


def _points(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}"


def _mean(stat: dict[str, Any] | None) -> float | None:
    return None if not stat else stat.get("mean")


def _run_time_line(result: dict[str, Any]) -> list[str]:
    rt = result.get("run_time")
    if not rt:
        return []
    parts = rt.get("run_parts", {})
    named = ", ".join(
        f"{label} {parts[key] / 60:.1f}" for key, label in (("quality_s", "quality"), ("speed_s", "speed"),
                                                            ("sweep_s", "sweep")) if key in parts
    )
    return [
        f"**Run time**: {rt['run_seconds'] / 60:.1f} min in all ({named} min); "
        f"{rt.get('trainings_cached', 0)} of {rt.get('trainings', 0)} trainings came from the model cache.",
        "",
    ]


def _class_overview(quality: dict[str, Any]) -> list[str]:
    """Every class scenario in one table per measure: the strategies side by side (means over seeds)."""
    classes = [s["name"] for s in quality["scenarios"] if s["kind"] == "class"]
    if not classes:
        return []
    labels, summary = quality["method_labels"], quality["summary"]
    forgetting = [m for m in quality["methods"] if m not in ("original", "retrained")]
    seeds, limits = quality["seeds"], quality.get("limits", {})

    def table(methods: list[str], cell: Any) -> list[str]:
        rows = [[name.removeprefix("class-"), *(cell(summary[name][m]) for m in methods)] for name in classes]
        means = []
        for m in methods:
            values = [cell(summary[name][m], raw=True) for name in classes]
            known = [v for v in values if v is not None]
            means.append(_points(sum(known) / len(known)) if known else "–")
        rows.append(["**mean**", *means])
        return _table(["class", *(labels[m] for m in methods)], rows)

    def forget(s: dict[str, Any], raw: bool = False) -> Any:
        value = _mean(s["metrics"]["forget_accuracy"])
        return value if raw else _points(value)

    def drop(s: dict[str, Any], raw: bool = False) -> Any:
        value = _mean(s["drop_from_original"]["test_accuracy"])
        return value if raw else _points(value)

    def probe(s: dict[str, Any], raw: bool = False) -> Any:
        value = _mean(s["metrics"].get("probe_forgotten_class_accuracy"))
        if raw:
            return value
        distance = _mean(s["distance_to_retrained"].get("probe_forgotten_class_accuracy"))
        return _points(value) + ("" if distance is None else f" (Δ {_points(distance)})")

    lines = [
        "### Every class at a glance",
        "",
        f"Means over {seeds} seed(s) (the per-class sections below give ± std). **Forget accuracy** (%), "
        f"target ≤ {_points(limits.get('class_forget_accuracy_max', 0.05), 0)}%:",
        "",
    ]
    lines += table(forgetting, forget)
    lines += [
        "",
        "**Drop of test accuracy on the other classes** from the original (points), target ≤ "
        f"{_points(limits.get('class_test_accuracy_drop_max', 0.02), 0)}:",
        "",
    ]
    lines += table(["retrained", *forgetting], drop)
    lines += [
        "",
        "**Feature probe**: accuracy (%) on the forgotten class's test images of a logistic regression "
        "trained on the model's penultimate features over a training sample that includes the class "
        "(Δ: distance to the retrained model, points). A model that only silences the class's logit "
        "keeps the original's probe accuracy; the retrained model sets the level to reach:",
        "",
    ]
    lines += table(["original", "retrained", *forgetting], probe)
    if "lfssd_select" not in quality["methods"]:  # results of a run before the selection existed
        return lines + [""]
    rows = []
    for name in classes:
        s = summary[name]["lfssd_select"]
        cost = quality.get("selection_cost_ratio", {}).get(name)
        rows.append([
            name.removeprefix("class-"),
            ", ".join(f"{c} ×{n}" if n > 1 else c for c, n in (s.get("cutoffs") or {}).items()) or "–",
            _num(s.get("alpha"), 2) if s.get("alpha") else "–",
            _num(s.get("choose_seconds"), 1),
            _num(summary[name]["lfssd_search_all"].get("choose_seconds"), 1),
            _num(cost, 2),
        ])
    lines += [
        "",
        "**What the default selection chose** (cut-off: the first stage dampening may touch, `all` = every "
        "layer; counts over seeds), what choosing cost, and its cost against today's search (`search_alpha` "
        "on [1, 1000], 12 steps, every layer, the same target; target ≤ "
        f"{limits.get('selection_cost_ratio_max', 2):g}×):",
        "",
    ]
    header = ["class", "cut-off", "α", "selection (s)", "all-layers search (s)", "cost / today's search"]
    lines += _table(header, rows)
    return lines + [""]


def _scenario_tables(quality: dict[str, Any], name: str) -> list[str]:
    labels, summary = quality["method_labels"], quality["summary"][name]
    first = next(iter(quality["per_seed"][name].values()))
    with_probe = any(_mean(summary[m]["metrics"].get("probe_forgotten_class_accuracy")) is not None
                     for m in quality["methods"])
    lines = [f"### {name} ({first['forget_samples']:,} forget samples)", ""]
    rows = []
    for method in quality["methods"]:
        s = summary[method]
        m = s["metrics"]
        alpha = _num(s["alpha"], 1) if s.get("alpha") else "–"
        rows.append(
            [
                labels[method],
                _pct(m["retain_accuracy"]),
                _pct(m["test_accuracy"]),
                _pct(m["forget_accuracy"]),
                *([_pct(m["probe_forgotten_class_accuracy"])] if with_probe else []),
                _pct(m["reference_member_rate"]),
                _pct(m["calibrated_member_rate"]),
                _num(m["seconds"], 1),
                alpha,
            ]
        )
    lines += _table(["method", "retain", "test", "forget", *(["probe"] if with_probe else []), "ref MR",
                     "cal MR", "time (s)", "α"], rows)
    lines += ["", "Distance to the retrained model (|method − retrained| per seed, in points):", ""]
    keys = ["retain_accuracy", "test_accuracy", "forget_accuracy",
            *(["probe_forgotten_class_accuracy"] if with_probe else []),
            "reference_member_rate", "calibrated_member_rate"]
    rows = [[labels[method], *(_pct(summary[method]["distance_to_retrained"][k]) for k in keys)]
            for method in quality["methods"] if method != "retrained"]
    lines += _table(["method", "Δ retain", "Δ test", "Δ forget", *(["Δ probe"] if with_probe else []),
                     "Δ ref MR", "Δ cal MR"], rows)
    return lines + [""]


def quality_section(quality: dict[str, Any]) -> list[str]:
    labels = quality["method_labels"]
    recipe = quality["recipe"]
    limits = quality.get("limits", {})
    lines = [
        "## Quality against retraining",
        "",
        f"Measured {quality['date']} on {_machine_line(quality)}. `{recipe['arch']}` on "
        f"{quality['data']['train_samples']:,} {quality['data']['dataset']} training images, "
        f"{recipe['epochs']} epoch(s) per training (AdamW, one-cycle, lr {recipe['lr']}, batch "
        f"{recipe['batch_size']}); {quality['seeds']} seed(s); mean ± std over seeds. Accuracies and member "
        "rates in %; in `class` scenarios *test* is the test accuracy on the retained classes. "
        "*probe*: the feature probe's accuracy on the forgotten class's test images. "
        "*ref MR*: the papers' attack (share of forget samples called member); *cal MR*: the calibrated "
        "attack's forget member rate (its held-out false-positive rate is the level to reach). *time*: "
        "training for original/retrained, finetuning, or the request with D importances cached (forget "
        "pass, the target's forward passes when α is searched, the choice, a dampened copy). Every "
        "dampening strategy is the product's own choice (`lethe.steps.unlearn.choose_dampening`, target "
        "from the gate's thresholds).",
        "",
        *_run_time_line(quality),
    ]
    lines += _class_overview(quality)
    for scenario in quality["scenarios"]:
        if scenario["kind"] != "class":
            lines += _scenario_tables(quality, scenario["name"])
    classes = [s["name"] for s in quality["scenarios"] if s["kind"] == "class"]
    if classes:
        lines += ["<details><summary>Every class scenario in detail</summary>", ""]
        for name in classes:
            lines += _scenario_tables(quality, name)
        lines += ["</details>", ""]
    misses = [t for t in quality["targets"] if not t["met"]]
    forget_max = _points(limits.get("class_forget_accuracy_max", 0.05), 0)
    drop_max = _points(limits.get("class_test_accuracy_drop_max", 0.02), 0)
    lines += [
        "### Targets",
        "",
        f"`class`: forget accuracy ≤ {forget_max}% and test accuracy on the other classes within {drop_max} "
        "points of the original; the default selection's feature probe no further from the retrained model "
        "than the all-layers search's, at most "
        f"{limits.get('selection_cost_ratio_max', 2):g}× the cost of today's search. `subject`: forget "
        "accuracy within ±2 points and member rates within ±0.05 of the retrained model (means over seeds). "
        f"{len(quality['targets']) - len(misses)} of {len(quality['targets'])} checks met. Misses (points; "
        "cost as a ratio):",
        "",
    ]

    def shown(value: float | None, unit: str, digits: int = 1) -> str:
        if value is None:
            return "–"
        return f"{value:.2f}×" if unit == "ratio" else f"{100 * value:.{digits}f}"

    rows = [
        [
            t["scenario"],
            labels[t["method"]],
            t["criterion"],
            shown(t["value"], t.get("unit", "points")),
            shown(t["limit"], t.get("unit", "points")),
            "–" if t["value"] is None else shown(t["miss_by"], t.get("unit", "points")),
        ]
        for t in misses
    ]
    lines += _table(["scenario", "method", "criterion", "value", "limit", "missed by"], rows)
    return lines


def sweep_section(sweep: dict[str, Any], image: str) -> list[str]:
    rec = sweep["recommendation"]
    lines = [
        "## α/λ sensitivity",
        "",
        f"![LFSSD sensitivity to α and λ]({image})",
        "",
        f"Seed 0's original model; accuracies on up to {sweep['eval_limit']:,} samples per split. "
        "Largest α (least change) meeting the target at λ=1, per scenario:",
        "",
    ]
    rows = []
    for name, r in rec["per_scenario"].items():
        best = r["largest_alpha_meeting_target"]
        rows.append(
            [
                name,
                "none in the grid" if best is None else f"{best:g}",
                ", ".join(f"{a:g}" for a in r["alphas_meeting_target_at_lam_1"]) or "–",
                ", ".join(f"{v:g}" for v in r["lambdas_below_1_meeting_target"]) or "–",
            ]
        )
    lines += _table(["scenario", "largest α", "α meeting the target (λ=1)", "λ<1 meeting it at some α"], rows)
    if rec.get("text"):
        lines += ["", f"**Recommendation.** {rec['text']}"]
    return lines


def device_section(resnet: dict[str, Any] | None, full: dict[str, Any] | None, prefix: str) -> list[str]:
    """The GPU runs: ResNet18 on synthetic CIFAR-shaped images (benchmarks/device_speed.py) and the
    whole Fashion-MNIST run with `--device cuda` (its own README beside its JSON files)."""
    if not resnet and not full:
        return []
    first = resnet or full
    lines = ["## On a GPU", "", f"Measured {first['date']} on {_machine_line(first)}.", ""]
    columns = []
    if resnet:
        columns.append(("ResNet18, CIFAR shape, synthetic", resnet["headline"]))
    if full:
        columns.append((f"{full['arch']}, Fashion-MNIST (`run.py --full --device cuda`)", full["headline"]))
    targets = {row["key"]: row["target"] for row in SPEED_TARGETS}
    lines += _table(
        ["ratio", *[name for name, _ in columns], "target"],
        [[f"`{key}`", *[_ratio(h.get(key)) for _, h in columns], target] for key, target in targets.items()],
    )
    if resnet:
        r, rt, ps = resnet["request"], resnet["retrain"], resnet["per_sample"]
        ov = resnet["importance_overhead"]
        lines += [
            "",
            f"ResNet18 (`{resnet['command']}`): importance pass / bare "
            "forward+backward "
            + ", ".join(f"{row['ratio']:.2f} over {row['batches']} × {row['batch_size']}" for row in ov)
            + " (a pass has fixed costs: the headline is the longest pass); "
            f"per-sample pass {ps['per_sample_samples_per_s']:.0f} samples/s "
            f"({ps['per_sample_cost_ratio']:.2f}× the batch-mean pass at batch {ps['batch_size']}); "
            f"D pass over {r['train_samples']:,} images {_seconds(r['d_pass_s'])}; a request of "
            f"{r['forget_samples']} samples with D cached {_seconds(r['cached_request_s'])} (Df pass "
            f"{_seconds(r['parts']['forget_pass_s'])}); one epoch of retraining on {rt['retain_samples']:,} "
            f"images (bf16) {_seconds(rt['epoch_s'])} — `retrain_speedup` here is against **one** "
            "epoch, a floor: a recipe of E epochs is E times it; `dampen` "
            f"{_seconds(resnet['dampen']['seconds_median'])}; evaluation of "
            f"{resnet['evaluation']['samples']:,} images with the MIA "
            f"{resnet['evaluation']['batched_total_with_mia_s']:.1f} s.",
        ]
    if full:
        lines += [
            "",
            f"The whole Fashion-MNIST run on the GPU: [{prefix}cuda/README.md]({prefix}cuda/README.md).",
        ]
    return lines


def render(results: Path, image_prefix: str, prose: str, command: str) -> str:
    speed, quality, sweep = (_load(results, n) for n in ("speed.json", "quality.json", "sweep.json"))
    resnet_cuda, full_cuda = _load(results, "speed-cuda.json"), _load(results / "cuda", "speed.json")
    # The run that produced the tables (a --readme-only regeneration only re-renders them).
    command = next((r["command"] for r in (speed, quality, sweep) if r and r.get("command")), command)
    parts = [
        "# lethe benchmarks",
        "",
        "Generated by `python -m benchmarks.run` from the JSON files in "
        f"`{image_prefix or '.'}` (last run: `{command}`). Do not edit the tables by hand; the "
        "discussion between the prose markers is kept.",
        "",
        "## How to run",
        "",
        "- `make bench` (`python -m benchmarks.run --full`): everything below, about an hour on 2 cores "
        "with no model cached (the run time of the last run is under *Quality*);",
        "- `make bench-quick` (`--quick`): the same code on small slices, one seed, one class and one "
        "subject scenario, ≤ 5 minutes (the CI smoke test); "
        "results go to `--out` (default `.lethe/bench/quick-results`), never over the published ones;",
        "- `python -m benchmarks.run --readme-only` regenerates this file from `results/*.json`;",
        "- `--device cuda` runs it on a GPU; `--seeds N` overrides the number of seeds;",
        "- `python -m benchmarks.device_speed --device cuda`: every headline ratio with ResNet18 on "
        "CIFAR-shaped synthetic images (a GPU's speed run, about 2 minutes on an H200) into "
        "`results/speed-cuda.json`; `python -m benchmarks.engine_speed`: the engine alone "
        "(importance pass, `dampen` on ResNet18) into `results/engine.json`.",
        "",
    ]
    if quality:
        parts += _design(quality) + [""]
    parts += [PROSE_BEGIN, prose.strip() or DEFAULT_PROSE, PROSE_END, ""]
    if speed:
        parts += speed_section(speed) + [""]
    if quality:
        parts += quality_section(quality) + [""]
    if sweep:
        parts += sweep_section(sweep, f"{image_prefix}sweep.png") + [""]
    parts += device_section(resnet_cuda, full_cuda, image_prefix)
    return "\n".join(parts).rstrip() + "\n"


def _slice(limit: int | None, what: str) -> str:
    return f"a fixed {limit:,}-sample slice of {what}" if limit else f"all of {what}"


def _design(quality: dict[str, Any]) -> list[str]:
    p, data = quality["profile"], quality["data"]
    scenarios = quality["scenarios"]
    trainings = p["seeds"] * (1 + len(scenarios))
    train_slice = _slice(p["train_limit"], "the train split")
    return [
        "## Design (about an hour on 2 cores)",
        "",
        f"- Data: {data['dataset']} (real images). Models are trained on {train_slice}"
        f" ({data['train_samples']:,} images, seeded); the speed benchmarks use "
        f"{data['speed_train_samples']:,} training images; {data['test_samples']:,} test images."
        + (f" Note: {data['note']}." if data.get("note") else ""),
        f"- `{p['arch']}`, {p['epochs']} epoch(s) per training: one original per seed ({p['seeds']} seeds) "
        "and one model retrained from scratch without the forget set per scenario and seed, the same "
        f"recipe: {trainings} trainings in all, the run's main cost (the full run trains with the demo's "
        "recipe, `lethe demo`'s model: the figures are those of the model users meet first).",
        "- The original's full-data importances (LFSSD, and SSD's with labels) are computed **once per "
        "seed** and reused by every scenario and method, as the product does per model version.",
        f"- Finetune baseline: {p['finetune_epochs']} epoch(s) on "
        f"{_slice(p['finetune_limit'], 'the retain set')}, lr 1e-3 decaying to 0.",
        f"- Every model is measured on {_slice(p['eval_retain_limit'], 'the retain set')}, the whole "
        f"forget set and {_slice(p['eval_test_limit'], 'the test set')}.",
        "- Every dampening strategy is the product's own choice, `lethe.steps.unlearn.choose_dampening` "
        "with the target `make_target` builds from the gate's thresholds (the scenario's forgetting "
        "target on fixed 2,000-sample retain/held-out slices; a subject's α capped at ASSD's): SSD and "
        "LFSSD at the paper's α and at ASSD's α on every layer, LFSSD with α searched on every layer, "
        "and LFSSD with the cut-off and α searched (the default).",
        "- Feature probe (class scenarios): a logistic regression on the penultimate features "
        "(`lethe.evaluation.feature_probe`) trained on "
        f"{_slice(p.get('probe_retain_limit'), 'the retain set')} plus "
        f"{_slice(p.get('probe_forget_limit'), 'the forget set')}, scored on the test samples.",
        "- Trained models are cached under `.lethe/bench/models/` keyed by recipe, seed and the exact "
        "training data, so a rerun reuses them (and the training time measured when they were trained).",
    ]


def write_readme(results: Path, readme: Path, image_prefix: str, command: str) -> Path:
    prose = ""
    if readme.is_file():
        text = readme.read_text()
        if PROSE_BEGIN in text and PROSE_END in text:
            prose = text.split(PROSE_BEGIN, 1)[1].split(PROSE_END, 1)[0]
            if prose.strip() == DEFAULT_PROSE:
                prose = ""
    readme.write_text(render(results, image_prefix, prose, command))
    return readme
