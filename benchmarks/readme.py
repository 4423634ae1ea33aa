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
                    f"cached request with lethe's α search ({r['search_trials']} trials of forward passes)",
                    _seconds(r["search_request_s"]),
                ],
                ["same, recomputing D", _seconds(r["search_recomputed_request_s"])],
            ],
        )
        lines += [
            "",
            f"With the α search the cached request is {_ratio(r['search_cached_speedup'])} faster "
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
            f"{_seconds(rt['unlearn_search_s'])} with the α search ({_ratio(rt['speedup_search'])}). In the "
            f"quality run ({m['train_samples']:,} training images, {m['scenario']}): retraining "
            f"{_seconds(m['retrain_s'])}, ASSD request {_seconds(m['unlearn_assd_s'])} "
            f"({_ratio(m['speedup_assd'])}), searched {_seconds(m['unlearn_search_s'])} "
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


def quality_section(quality: dict[str, Any]) -> list[str]:
    labels = quality["method_labels"]
    recipe = quality["recipe"]
    lines = [
        "## Quality against retraining",
        "",
        f"Measured {quality['date']} on {_machine_line(quality)}. `{recipe['arch']}` on "
        f"{quality['data']['train_samples']:,} {quality['data']['dataset']} training images, "
        f"{recipe['epochs']} epoch(s) per training (AdamW, one-cycle, lr {recipe['lr']}, batch "
        f"{recipe['batch_size']}); {quality['seeds']} seed(s); mean ± std over seeds. Accuracies and member "
        "rates in %; in `class` scenarios *test* is the test accuracy on the retained classes. "
        "*ref MR*: the papers' attack (share of forget samples called member); *cal MR*: the calibrated "
        "attack's forget member rate (its held-out false-positive rate is the level to reach). *time*: "
        "training for original/retrained, finetuning, or the request with D importances cached.",
        "",
    ]
    for scenario in quality["scenarios"]:
        name = scenario["name"]
        summary = quality["summary"][name]
        first = next(iter(quality["per_seed"][name].values()))
        lines += [f"### {name} ({first['forget_samples']:,} forget samples)", ""]
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
                    _pct(m["reference_member_rate"]),
                    _pct(m["calibrated_member_rate"]),
                    _num(m["seconds"], 1),
                    alpha,
                ]
            )
        lines += _table(["method", "retain", "test", "forget", "ref MR", "cal MR", "time (s)", "α"], rows)
        lines += ["", "Distance to the retrained model (|method − retrained| per seed, in points):", ""]
        rows = []
        for method in quality["methods"]:
            if method == "retrained":
                continue
            d = summary[method]["distance_to_retrained"]
            rows.append(
                [
                    labels[method],
                    *(
                        _pct(d[k])
                        for k in (
                            "retain_accuracy",
                            "test_accuracy",
                            "forget_accuracy",
                            "reference_member_rate",
                            "calibrated_member_rate",
                        )
                    ),
                ]
            )
        lines += _table(["method", "Δ retain", "Δ test", "Δ forget", "Δ ref MR", "Δ cal MR"], rows)
        lines.append("")
    misses = [t for t in quality["targets"] if not t["met"]]
    lines += [
        "### Targets",
        "",
        "`class`: forget accuracy ≤ 2%, retain and retained-class test accuracy within 2 points of the "
        "original. `subject`: forget accuracy within ±2 points and member rates within ±0.05 of the "
        f"retrained model (means over seeds). {len(quality['targets']) - len(misses)} of "
        f"{len(quality['targets'])} checks met. Misses:",
        "",
    ]
    rows = [
        [
            t["scenario"],
            labels[t["method"]],
            t["criterion"],
            "–" if t["value"] is None else f"{100 * t['value']:.1f}",
            f"{100 * t['limit']:.0f}",
            "–" if t["value"] is None else f"{100 * t['miss_by']:.1f}",
        ]
        for t in misses
    ]
    lines += _table(
        ["scenario", "method", "criterion", "value (pts)", "limit (pts)", "missed by (pts)"], rows
    )
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
        "- `make bench` (`python -m benchmarks.run --full`): everything below, ≤ 60 minutes on 2 cores;",
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
        "## Design (what fits in an hour on 2 cores)",
        "",
        f"- Data: {data['dataset']} (real images). Models are trained on {train_slice}"
        f" ({data['train_samples']:,} images, seeded); the speed benchmarks use "
        f"{data['speed_train_samples']:,} training images; {data['test_samples']:,} test images."
        + (f" Note: {data['note']}." if data.get("note") else ""),
        f"- `{p['arch']}`, {p['epochs']} epoch(s) per training: one original per seed ({p['seeds']} seeds) "
        "and one model retrained from scratch without the forget set per scenario and seed, the same "
        f"recipe: {trainings} trainings in all — the run's main cost, and why the epochs are few.",
        "- The original's full-data importances (LFSSD, and SSD's with labels) are computed **once per "
        "seed** and reused by every scenario and method, as the product does per model version.",
        f"- Finetune baseline: {p['finetune_epochs']} epoch(s) on "
        f"{_slice(p['finetune_limit'], 'the retain set')}, lr 1e-3 decaying to 0.",
        f"- Every model is measured on {_slice(p['eval_retain_limit'], 'the retain set')}, the whole "
        f"forget set and {_slice(p['eval_test_limit'], 'the test set')}.",
        "- LFSSD's searched α is lethe's own search (`lethe.steps.unlearn`: bisection on log α in "
        "[1, 1000], 12 steps, the scenario's forgetting target on fixed 2,000-sample retain/held-out "
        "slices).",
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
