"""lethe's benchmarks: speed against the limits, forgetting quality against retraining.

    python -m benchmarks.run --full   [--out benchmarks/results] [--device cpu|cuda] [--seeds N]
    python -m benchmarks.run --quick  [--out DIR]   # CI smoke run, ≤ 5 min on 2 cores

Run from the repository root (benchmarks/ is not part of the installed distribution; lethe is).

Writes speed.json, quality.json, sweep.json, sweep.png and a README.md with the tables into --out
(the full run's default, benchmarks/results, regenerates benchmarks/README.md instead). The
quick run defaults to LETHE_HOME/bench/quick-results so it never overwrites the published results.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks import readme, speed
from benchmarks.engine_speed import importance_overhead
from benchmarks.profiles import PROFILES, Profile
from benchmarks.quality import run_quality
from benchmarks.sweep import plot_sweep, run_sweep
from benchmarks.targets import SPEED_TARGETS
from benchmarks.workbench import (
    BenchData,
    command_line,
    load_bench_data,
    machine,
    now,
    section,
    write_json,
)
from lethe.config import settings

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_RESULTS = BENCH_DIR / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        dest="profile",
        action="store_const",
        const="quick",
        help="CI smoke run: a 6,000-image slice, one seed (≤ 5 min on 2 cores)",
    )
    size.add_argument("--smoke", dest="profile", action="store_const", const="smoke", help=argparse.SUPPRESS)
    size.add_argument(
        "--full",
        dest="profile",
        action="store_const",
        const="full",
        help="the published run (about an hour on 2 cores); the default",
    )
    parser.set_defaults(profile="full")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="result folder (default: benchmarks/results for --full, "
        "LETHE_HOME/bench/quick-results for --quick)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--seeds", type=int, default=None, help="override the profile's number of seeds")
    parser.add_argument(
        "--no-cache", action="store_true", help="retrain every model, ignoring the model cache"
    )
    parser.add_argument(
        "--readme-only",
        action="store_true",
        help="only regenerate the README tables from the JSON files already in --out",
    )
    return parser.parse_args(argv)


def default_out(profile: str) -> Path:
    return DEFAULT_RESULTS if profile == "full" else settings().home / "bench" / "quick-results"


def evaluation_speed(
    profile: Profile, data: BenchData, model: torch.nn.Module, device: torch.device
) -> dict[str, Any]:
    """Batched evaluation (MIA included) against batch-size-1: benchmarks/eval_speed.py."""
    try:
        from benchmarks import eval_speed
    except ImportError:
        return {"skipped": "benchmarks/eval_speed.py is missing", "speedup": None}
    return eval_speed.run(
        model=model, train=data.speed_train, test=data.test, device=device, quick=profile.name != "full"
    )


def training_throughput(quality: dict[str, Any]) -> float:
    """Median seconds per (sample × epoch) over every training the quality run did (or cached)."""
    epochs = quality["recipe"]["epochs"]
    rates = [row["train_seconds"] / (quality["data"]["train_samples"] * epochs) for row in quality["setup"]]
    for by_seed in quality["per_seed"].values():
        for result in by_seed.values():
            rates.append(result["methods"]["retrained"]["seconds"] / (result["retain_samples"] * epochs))
    return statistics.median(rates)


def trainings(quality: dict[str, Any]) -> dict[str, int]:
    """How many models the quality run trained, and how many of them came from the model cache: a
    run's time depends on it (a cached training costs nothing)."""
    cached = [row["cached"] for row in quality["setup"]]
    for by_seed in quality["per_seed"].values():
        cached += [bool(r["methods"]["retrained"]["info"].get("cached")) for r in by_seed.values()]
    return {"trainings": len(cached), "trainings_cached": sum(cached)}


def retrain_ratio(quality: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """Retraining from scratch (same recipe) against unlearning.

    `measured`: on the smallest subject scenario of the quality run (retraining and the request,
    mean over seeds). Headline: the speed request (D importances cached) against retraining on
    the same data: measured when the quality run trained on it too (the full run), else scaled
    from the measured training throughput (time is linear in samples × epochs).
    """
    subjects = [s for s in quality["scenarios"] if s["kind"] == "subject"]
    name = min(subjects, key=lambda s: s["size"])["name"]
    summary = quality["summary"][name]
    retrain = summary["retrained"]["metrics"]["seconds"]["mean"]
    assd = summary["lfssd_assd"]["metrics"]["seconds"]["mean"]
    search = summary["lfssd_select"]["metrics"]["seconds"]["mean"]
    recipe = quality["recipe"]
    per_sample_epoch = training_throughput(quality)
    retained = request["train_samples"] - request["forget_samples"]
    same_data = quality["data"]["train_samples"] == request["train_samples"]
    # On the same data the retraining was measured; on more data it is scaled by samples × epochs.
    full_retrain = retrain if same_data else per_sample_epoch * retained * recipe["epochs"]
    return {
        "recipe": f"{recipe['arch']}, {recipe['epochs']} epoch(s), batch {recipe['batch_size']}",
        "retrain_measured": same_data,
        "training_seconds_per_1000_sample_epochs": per_sample_epoch * 1000,
        "retrain_samples": retained,
        "retrain_s": full_retrain,
        "unlearn_assd_s": request["cached_request_s"],
        "unlearn_search_s": request["search_request_s"],
        "speedup_assd": full_retrain / request["cached_request_s"],
        "speedup_search": full_retrain / request["search_request_s"],
        "measured": {
            "scenario": name,
            "train_samples": quality["data"]["train_samples"],
            "seeds": summary["retrained"]["metrics"]["seconds"]["n"],
            "retrain_s": retrain,
            "unlearn_assd_s": assd,
            "unlearn_search_s": search,
            "speedup_assd": retrain / assd,
            "speedup_search": retrain / search,
            "retrain_cached": any(
                seed["methods"]["retrained"]["info"].get("cached")
                for seed in quality["per_seed"][name].values()
            ),
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = PROFILES[args.profile].with_seeds(args.seeds)
    device = torch.device(args.device)
    out = (args.out or default_out(args.profile)).resolve()
    out.mkdir(parents=True, exist_ok=True)
    command = command_line("-m benchmarks.run", argv if argv is not None else sys.argv[1:])
    if args.readme_only:
        print(f"written: {write_readme(out, command)}")
        return 0
    started = time.perf_counter()
    info = {"machine": machine(device), "date": now(), "profile": profile.to_dict(), "command": command}
    print(f"lethe benchmarks ({profile.name}) → {out}", flush=True)

    data = load_bench_data(
        profile.dataset,
        profile.train_limit,
        profile.speed_train_limit,
        fallback="digits" if profile.name == "quick" else None,
    )
    data_info = {
        "dataset": data.train.name,
        "train_samples": len(data.train),
        "test_samples": len(data.test),
        "speed_train_samples": len(data.speed_train),
        "note": data.note,
    }

    with section("speed: importance pass vs bare forward+backward"):
        shape = (data.train.in_channels, *data.train.image_size)
        runs = [(profile.arch, shape)]
        if device.type == "cuda":  # the paper's model, CIFAR-shaped (speed does not depend on the data)
            runs.append(("resnet18-cifar", (3, 32, 32)))
        overhead = [
            importance_overhead(
                arch,
                arch_shape,
                profile.overhead_batches,
                profile.overhead_batch_size,
                profile.overhead_repeats,
                device,
            )
            for arch, arch_shape in runs
        ]

    parts: dict[str, float] = {}
    with section("quality"):
        quality_started = time.perf_counter()
        quality, context = run_quality(profile, data, device=device, use_cache=not args.no_cache)
        parts["quality_s"] = time.perf_counter() - quality_started
    quality = {**info, "data": data_info, "seeds": profile.seeds, **quality}
    write_json(out / "quality.json", quality)

    with section("speed: request latency (cached vs recomputed D)"):
        request = speed.request_latency(
            context.original,
            data.speed_train,
            data.test,
            size=profile.request_size,
            batch_size=profile.importance_batch_size,
            repeats=profile.latency_repeats,
            device=device,
            paper_alpha=profile.paper_alpha,
        )
    with section("speed: D-pass scaling and merged shards"):
        scaling = speed.scaling(
            context.original,
            data.speed_train,
            sizes=profile.scaling_sizes,
            batch_size=profile.importance_batch_size,
            shards=profile.shards,
            device=device,
        )
    with section("speed: per-sample pass vs batch-mean pass"):
        per_sample = speed.per_sample_cost(
            context.original,
            data.speed_train.subset(torch.arange(min(profile.per_sample_samples, len(data.speed_train)))),
            batch_size=profile.overhead_batch_size,
            device=device,
        )
    with section("speed: evaluation throughput"):
        evaluation = evaluation_speed(profile, data, context.original, device)
    retrain = retrain_ratio(quality, request)
    headline = {
        "importance_overhead_ratio": overhead[0]["ratio"],
        "cached_speedup": request["cached_speedup"],
        "retrain_speedup": retrain["speedup_assd"],
        "eval_speedup": evaluation.get("speedup"),
    }
    targets = [
        {
            "key": t["key"],
            "what": t["what"],
            "target": t["target"],
            "met": headline[t["key"]] is not None and bool(t["check"](headline[t["key"]])),
        }
        for t in SPEED_TARGETS
    ]
    speed_result = {
        **info,
        "data": data_info,
        "arch": profile.arch,
        **headline,
        "headline": headline,
        "targets": targets,
        "importance_overhead": overhead,
        "per_sample": per_sample,
        "request": request,
        "retrain": retrain,
        "scaling": scaling,
        "evaluation": evaluation,
    }
    write_json(out / "speed.json", speed_result)

    with section("α/λ sensitivity sweep"):
        sweep_started = time.perf_counter()
        sweep = run_sweep(profile, data, context, device=device)
        plot_sweep(sweep, out / "sweep.png")
        parts["sweep_s"] = time.perf_counter() - sweep_started
    write_json(out / "sweep.json", {**info, **sweep})

    total = time.perf_counter() - started
    parts["speed_s"] = total - parts["quality_s"] - parts["sweep_s"]
    run_time = {"run_seconds": total, "run_parts": parts, **trainings(quality)}
    # The whole run's time is known only now: both results carry it (the README prints it).
    write_json(out / "quality.json", {**quality, "run_time": run_time})
    write_json(out / "speed.json", {**speed_result, "run_time": run_time})
    write_readme(out, command)
    print(
        f"done in {total / 60:.1f} min; headline: "
        + ", ".join(f"{k}={v:.3g}" for k, v in headline.items() if v is not None),
        flush=True,
    )
    return 0


def write_readme(out: Path, command: str) -> Path:
    """Regenerate the tables: benchmarks/README.md for the published results, else out/README.md."""
    if out.resolve() == DEFAULT_RESULTS.resolve():
        return readme.write_readme(out, BENCH_DIR / "README.md", "results/", command)
    return readme.write_readme(out, out / "README.md", "", command)


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    sys.exit(main())
