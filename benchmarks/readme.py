"""benchmarks/README.md from README.template.md and the result JSON files: tables regenerated, the prose kept.

The template holds the fixed text and one placeholder per section; each section is one function here
(`speed_section`, `quality_section`, `sweep_section`, ...), its tables built by `_table`. The hand-written
discussion lives between the PROSE markers and survives regeneration; every number outside it comes from
the JSON files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from string import Template
from typing import Any

PROSE_BEGIN, PROSE_END = "<!-- prose: kept when the tables are regenerated -->", "<!-- /prose -->"
DEFAULT_PROSE = "_(Written after a full run: where LFSSD misses, and by how much.)_"
TEMPLATE = Path(__file__).with_name("README.template.md")


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


def speed_section(speed: dict[str, Any], title: str = "## Speed") -> list[str]:
    """The seven ratios against their targets, then the parts each ratio is made of."""
    lines = [title, "", f"Measured {speed['date']} on {_machine_line(speed)}; `{speed['arch']}`, "
             f"trained with its own recipe ({speed['recipe']['epochs']} epoch(s)).", ""]
    rows = [[f"`{t['key']}`: {t['what']}", _ratio(t["value"]), t["target"],
             "not measured" if t["value"] is None else "yes" if t["met"] else "**no**"]
            for t in speed["targets"]]
    lines += _table(["ratio", "measured", "target", "met"], rows)
    r, ev, rt, pl = speed["request"], speed["evaluation"], speed["retrain"], speed["pipeline"]
    ps, ov = speed["per_sample"], speed["importance_overhead"]
    parts = [
        ["importance pass (batch-mean, batch "
         f"{ov['batch_size']}) / bare forward+backward, {ov['batches']} batches",
         f"{_seconds(ov['importances_seconds_median'])} / {_seconds(ov['bare_seconds_median'])}"],
        [f"per-sample pass / bare batched forward+backward (batch {ps['batch_size']}), "
         f"{ps['samples']:,} samples",
         f"{_seconds(ps['per_sample_s'])} / {_seconds(ps['bare_s'])}"],
        [f"D pass over {r['train_samples']:,} samples", _seconds(r["d_pass_s"])],
        [f"request of {r['forget_samples']} samples, D cached, ASSD α (load D + Df pass + α + dampen a copy)",
         _seconds(r["assd_request_s"])],
        ["… of which load D / Df pass / one dampening",
         " / ".join(_seconds(r["parts"][k]) for k in ("load_d_s", "forget_pass_s", "dampen_copy_s"))],
        ["same request recomputing D", _seconds(r["assd_recomputed_request_s"])],
        [f"request with the default selection (cut-off {r['default_cutoff']}, α {r['default_alpha']:.3g}, "
         f"{r['default_trials']} trial(s) of forward passes)", _seconds(r["default_request_s"])],
        [f"retraining with the model's recipe on {rt['retrain_samples']:,} images"
         + ("" if rt.get("measured", True) else " (scaled from the measured training throughput)"),
         _seconds(rt["retrain_s"])],
        [f"evaluate step: bare forward of {ev['models']} models over {ev['samples']:,} samples / whole "
         f"evaluation ({ev['reference_models']} reference models)",
         f"{_seconds(ev['bare_forward_s'])} / {_seconds(ev['evaluation_s'])}"],
        *_evaluation_parts(ev.get("evaluation_timing_s") or {}, r["forget_samples"]),
        ["scheduled run through kfp.local / steps called directly",
         pl.get("skipped") or f"{_seconds(pl['kfp_local_s'])} / {_seconds(pl['direct_s'])}"],
        ["`dampen` on ResNet18 (median)", _seconds(speed["dampen"]["seconds_median"])],
    ]
    lines += ["", "What the ratios are made of:", ""] + _table(["part", "seconds"], parts)
    return lines + _scaling_lines(speed["scaling"]) + _scale_lines(speed["scale"], speed["machine"]["device"])


#: The evaluate step's timing after its forward passes (`timing_s` of metrics.json), in order.
EVALUATION_PARTS = {"metrics_and_attacks": "accuracies and the population attacks",
                    "per_example": "the per-example test (reference logits cached)",
                    "evidently": "the Evidently report", "plots": "the plots"}


def _evaluation_parts(timing: dict[str, float], forget_samples: int) -> list[list[str]]:
    """One row: what the whole evaluation spends beyond its forward passes, part by part."""
    present = [k for k in EVALUATION_PARTS if k in timing]
    if not present:  # a run before the evaluation timed its parts
        return []
    what = " / ".join(EVALUATION_PARTS[k] for k in present)
    return [[f"… of which forward / {what} ({forget_samples}-sample request)",
             " / ".join(_seconds(timing[k]) for k in ("forward", *present))]]


def _scaling_lines(sc: dict[str, Any]) -> list[str]:
    fit, s = sc["fit"], sc["shards"]
    lines = ["", f"**D-pass time against |D|** ({fit['seconds_per_1000_samples']:.2f} s per 1,000 samples + "
             f"{fit['intercept_s']:.2f} s, R² = {fit['r2']:.4f}):", ""]
    lines += _table(["samples", "seconds", "samples/s"], [[f"{p['samples']:,}", f"{p['seconds']:.2f}",
                                                      f"{p['samples_per_s']:.0f}"] for p in sc["points"]])
    shards = " + ".join(f"{t:.1f}" for t in s["shard_seconds"])
    return lines + ["", f"**{s['k']} shards** cut as the `importances` pipeline cuts them (`shard_range`) "
                    f"and merged, against one pass over {s['samples']:,} samples: largest relative "
                    f"difference {s['max_rel_diff']:.1e}; shards {shards} s, merge "
                    f"{_seconds(s['merge_seconds'])}, one pass {s['one_pass_seconds']:.1f} s."]


def _scale_lines(sc: dict[str, Any], device: str) -> list[str]:
    """The D pass of ImageNet on ResNet50 on paper: linear in |D|, plus the merge's cost per shard."""
    lines = ["", f"**Scale on paper**: {sc['images']:,} images of {sc['image_size']}×{sc['image_size']} on "
             f"ResNet50 ({sc['parameters'] / 1e6:.1f} M parameters), from the per-sample throughput "
             f"measured here on {sc['images_measured']} image(s) ({sc['samples_per_s']:.2f} images/s on one "
             f"`{device}`), "
             f"through the `importances` pipeline's `ParallelFor` (the merge loads and adds each shard: "
             f"{_seconds(sc['merge_per_shard_s'])} per shard):", ""]
    lines += _table(["devices", "D pass"], [[str(row["devices"]), _duration(row["d_pass_s"])]
                                             for row in sc["rows"]])
    default = sc.get("default_request_s")
    return lines + ["", f"A cached request of {sc['request_size']} images then costs "
                    f"{_seconds(sc['assd_request_s'])} with ASSD's α (load D {_seconds(sc['load_d_s'])}, "
                    f"Df pass, one dampening {_seconds(sc['dampen_s'])})"
                    + ("" if default is None else f", about {_seconds(default)} with the default selection "
                       "(its measured `request_to_limit` times the floor)") + "."]


def _duration(seconds: float) -> str:
    return _seconds(seconds) if seconds < 3600 else f"{seconds / 3600:.1f} h"


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


def device_section(device: dict[str, Any] | None, full: dict[str, Any] | None, prefix: str) -> list[str]:
    """The GPU: `benchmarks.speed --device cuda` (speed-cuda.json), and a link to the whole run with
    `--device cuda` (its own README beside its JSON files)."""
    lines = speed_section(device, "## On a GPU") if device else []
    if full:
        lines += ["", f"The whole run on a GPU: [{prefix}cuda/README.md]({prefix}cuda/README.md)."]
    return lines


MEMORISED_KINDS = {"wrong_label": "wrong-label subjects (label memorisation)",
                   "stamped": "stamped subjects (input memorisation: a pattern and a label of their own)"}


def memorised_section(quality: dict[str, Any]) -> list[str]:
    """The memorised-subject scenario (benchmarks/memorised.py): per kind, every model against the
    retrained one, and the goal (or the gate's refusal and the `retrain` remedy)."""
    memorised = quality.get("memorised")
    if not memorised:
        return []
    lines = ["", "### Memorised subjects"]
    if memorised.get("skipped"):
        return [*lines, "", f"Not run in this profile: {memorised['skipped']}."]
    r, limits = memorised["recipe"], memorised["limits"]
    fpr = f"{100 * float(limits['fpr']):g}%"
    recipe = (f"Recipe that memorises: `{r['arch']}` on the first {r['train_samples']:,} training images, "
              f"{r['epochs']} epochs, batch {r['batch_size']}, lr {r['lr']}, weight decay "
              f"{r['weight_decay']}, no augmentation; {r['wrong_label_subjects']} wrong-label and "
              f"{r['stamped_subjects']} stamped subjects of {r['images_per_subject']} images each in one "
              f"training set per seed; {r['reference_models']} reference models on random halves (same "
              f"recipe); each stamped pattern also on {r['stamped_test_per_subject']} held-out test images "
              "of other classes.")
    meaning = ("Agreement: the share of the subjects' images predicted as their planted label; flagged: the "
               f"per-example test's share at {fpr} FPR (subjects flagged: those whose share is above "
               "held-out "
               "non-members'). Every dampening candidate is one request of all subjects, chosen by "
               "`choose_dampening`.")
    lines += ["", recipe, meaning]
    labels = quality.get("method_labels", {})
    for kind, by_method in memorised["summary"].items():
        header = ["method", "agreement", "flagged", "subjects flagged", "test acc", "gate refuses", "seconds"]
        if kind == "stamped":
            header.insert(2, "stamped-image rate")
        rows = []
        for method, s in by_method.items():
            m = s["metrics"]
            row = [labels.get(method, method), _pct(m["memorised_agreement"]), _pct(m["flagged_share"]),
                   _pct(m["subjects_flagged"]), _pct(m["test_accuracy"]), f"{s['gate_refuses']}/{s['seeds']}",
                   _seconds(_mean(s["seconds"]))]
            if kind == "stamped":
                row.insert(2, _pct(m["stamped_rate"]))
            rows.append(row)
        goal = memorised["goals"][kind]
        lines += ["", f"**{MEMORISED_KINDS.get(kind, kind)}** (%, mean ± std over seeds):", "",
                  *_table(header, rows), ""]
        best = labels.get(goal["best"], goal["best"])
        if goal["met"]:
            lines.append(f"Goal met by {best}: within {_points(limits['distance_max'], 0)} points of the "
                         f"retrained model on agreement and flagged share, at most "
                         f"{_points(limits['test_accuracy_drop_max'], 0)} point of test accuracy lost.")
        else:
            remedy = goal["remedy"] or {}
            refuses = ("the gate refuses every dampening candidate on every seed" if
                       goal["gate_refuses_every_candidate"] else
                       "the gate does not refuse every dampening candidate")
            got = remedy.get("metrics") or {}
            lines.append(f"Goal missed: the closest candidate, {best}, misses by "
                         f"{_points(goal['miss_by'])} points; {refuses}. The remedy, `lethe retrain`, trains "
                         f"the recipe without the subjects: {_seconds(_mean(remedy.get('seconds')))}, "
                         f"agreement {_pct(got.get('memorised_agreement'))}%, flagged "
                         f"{_pct(got.get('flagged_share'))}% (the retrained row).")
    return lines


def _current(speed: dict[str, Any] | None) -> dict[str, Any] | None:
    """A speed result of today's format (the seven ratios); an older one is not rendered."""
    return speed if speed and "eval_efficiency" in speed.get("headline", {}) else None


def _block(lines: list[str]) -> str:
    return "\n".join(lines) + "\n" if lines else ""


def render(results: Path, image_prefix: str, prose: str, command: str) -> str:
    """The README: the template's text, each placeholder filled by one section function."""
    speed, quality, sweep = (_load(results, n) for n in ("speed.json", "quality.json", "sweep.json"))
    device, full_cuda = _current(_load(results, "speed-cuda.json")), _load(results / "cuda", "speed.json")
    # The run that produced the tables (a --readme-only regeneration only re-renders them).
    # (a speed result re-measured alone with `--only speed` names its own command beside the whole run's)
    commands = [r["command"] for r in (quality, speed, sweep) if r and r.get("command")]
    command = "`; `".join(dict.fromkeys(commands)) or command
    speed = _current(speed)
    text = Template(TEMPLATE.read_text()).substitute(
        folder=image_prefix or ".",
        command=command,
        design=_block(_design(quality) if quality else []),
        prose=_block([PROSE_BEGIN, prose.strip() or DEFAULT_PROSE, PROSE_END]),
        speed=_block(speed_section(speed) if speed else []),
        quality=_block([*quality_section(quality), *memorised_section(quality)] if quality else []),
        sweep=_block(sweep_section(sweep, f"{image_prefix}sweep.png") if sweep else []),
        gpu=_block(device_section(device, full_cuda, image_prefix)),
    )
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"


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
        *_memorised_design(p),
    ]


def _memorised_design(p: dict[str, Any]) -> list[str]:
    """The memorised-subject scenario's cost (benchmarks/memorised.py), from the profile."""
    if "memorised_epochs" not in p:  # results of a run before the scenario existed
        return []
    if p.get("memorised_skip"):
        return [f"- Memorised subjects: not run ({p['memorised_skip']})."]
    limit = p["memorised_train_limit"]
    first = f"the first {limit:,} images of the train split" if limit else "all of the train split"
    return [f"- Memorised subjects: per seed, {p['memorised_wrong_label']} wrong-label and "
            f"{p['memorised_stamped']} stamped subjects of {p['memorised_per_subject']} images planted into "
            f"{first} (`lethe.data.planted`, published as a "
            f"`shards:` data set), {p['memorised_epochs']} epochs: an original, a retrained model and "
            f"{p['memorised_references']} reference models on halves (`lethe.audit.prepare_references`), "
            "cached under `.lethe/bench/memorised/`."]


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
