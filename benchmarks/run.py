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
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks import readme, speed
from benchmarks.memorised import run_memorised
from benchmarks.profiles import PROFILES, Profile
from benchmarks.quality import run_quality
from benchmarks.sweep import plot_sweep, run_sweep
from benchmarks.timing import now, section, timed, write_json
from benchmarks.trained import Recipe, train_or_load
from benchmarks.workbench import BenchData, command_line, load_bench_data, machine
from lethe.config import settings

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_RESULTS = BENCH_DIR / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    for flag, help_text in (("--quick", "CI smoke run: a 6,000-image slice, one seed (≤ 5 min on 2 cores)"),
                            ("--smoke", argparse.SUPPRESS),
                            ("--small", "with --only memorised: the memorised scenario's smaller recipe "
                             "(2,000 images, 15 epochs, K=8, 3 seeds)"),
                            ("--full", "the published run (about an hour on 2 cores); the default")):
        size.add_argument(flag, dest="profile", action="store_const", const=flag[2:], help=help_text)
    parser.set_defaults(profile="full")
    parser.add_argument("--out", type=Path, default=None, help="result folder (default: benchmarks/results "
                        "for --full, LETHE_HOME/bench/quick-results for --quick)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--seeds", type=int, default=None, help="override the profile's number of seeds")
    parser.add_argument("--no-cache", action="store_true", help="retrain every model, ignoring the cache")
    parser.add_argument("--only", choices=("speed", "memorised"), default=None,
                        help="re-measure one part against the results already in --out: `speed` rewrites "
                        "speed.json on seed 0's original model (from the model cache) and keeps quality.json "
                        "and sweep.json; `memorised` reruns the memorised-subject scenario with this "
                        "profile and replaces quality.json's `memorised` (which records its own run)")
    parser.add_argument("--readme-only", action="store_true",
                        help="only regenerate the README tables from the JSON files already in --out")
    return parser.parse_args(argv)


def default_out(profile: str) -> Path:
    return DEFAULT_RESULTS if profile == "full" else settings().home / "bench" / "quick-results"


def _trainings(quality: dict[str, Any]) -> list[tuple[float, int, bool]]:
    """Every training the quality run did (or took from the model cache): seconds, samples, cached."""
    done = [(r["train_seconds"], quality["data"]["train_samples"], r["cached"]) for r in quality["setup"]]
    return done + [(m["seconds"], r["retain_samples"], bool(m["info"].get("cached")))
                   for by_seed in quality["per_seed"].values() for r in by_seed.values()
                   for m in (r["methods"]["retrained"],)]


def training_throughput(quality: dict[str, Any]) -> float:
    """Median seconds per (sample × epoch) over every training the quality run did (or cached)."""
    return statistics.median(s / (n * quality["recipe"]["epochs"]) for s, n, _ in _trainings(quality))


def trainings(quality: dict[str, Any]) -> dict[str, int]:
    """How many models the quality run trained, and how many of them came from the model cache: a
    run's time depends on it (a cached training costs nothing)."""
    cached = [c for *_, c in _trainings(quality)]
    return {"trainings": len(cached), "trainings_cached": sum(cached)}


def retraining_seconds(quality: dict[str, Any], train_samples: int, forget_samples: int) -> dict[str, Any]:
    """Retraining the speed run's model from scratch without a request's samples, with the model's own
    recipe (the quality run's: the demo's in the full run). Measured when the quality run trained on the
    same data (the smallest subject scenario, mean over seeds), else scaled from the measured training
    throughput (time is linear in samples × epochs)."""
    subjects = [s for s in quality["scenarios"] if s["kind"] == "subject"]
    name = min(subjects, key=lambda s: s["size"])["name"]
    recipe = quality["recipe"]
    measured = quality["data"]["train_samples"] == train_samples
    per_sample_epoch = training_throughput(quality)
    seconds = (quality["summary"][name]["retrained"]["metrics"]["seconds"]["mean"] if measured
               else per_sample_epoch * (train_samples - forget_samples) * recipe["epochs"])
    return {"retrain_s": seconds, "measured": measured, "scenario": name,
            "training_seconds_per_1000_sample_epochs": per_sample_epoch * 1000}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = PROFILES[args.profile].with_seeds(args.seeds)
    device = torch.device(args.device)
    out = (args.out or default_out(args.profile)).resolve()
    if args.only and not (out / "quality.json").is_file():
        print(f"error: --only {args.only} needs {out / 'quality.json'}: run the whole benchmark first",
              file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    command = command_line("-m benchmarks.run", argv if argv is not None else sys.argv[1:])
    if args.readme_only:
        print(f"written: {write_readme(out, command)}")
        return 0
    started = time.perf_counter()
    info = {"machine": machine(device), "date": now(), "profile": profile.to_dict(), "command": command}
    print(f"lethe benchmarks ({profile.name}) → {out}", flush=True)

    data = load_bench_data(profile.dataset, profile.train_limit, profile.speed_train_limit,
                           fallback="digits" if profile.name == "quick" else None)
    data_info = {"dataset": data.train.name, "train_samples": len(data.train), "test_samples": len(data.test),
                 "speed_train_samples": len(data.speed_train), "note": data.note}

    # The pipeline's steps check the data against the model's card: only a model of the whole split.
    whole_split = not data.note and profile.train_limit is None and profile.speed_train_limit is None
    if args.only == "speed":
        quality = json.loads((out / "quality.json").read_text())
        original = train_or_load(Recipe(arch=profile.arch, epochs=profile.epochs), data.train, seed=0,
                                 device=device, use_cache=not args.no_cache)
        speed_result, seconds = timed(lambda: run_speed(profile, data, quality, original.model, device,
                                                        whole_split))
        run_time = {"run_seconds": seconds, "run_parts": {"speed_s": seconds}, "only": "speed"}
        write_json(out / "speed.json", {**info, "data": data_info, **speed_result, "run_time": run_time})
        write_readme(out, command)
        return 0

    if args.only == "memorised":
        quality = json.loads((out / "quality.json").read_text())
        memorised = run_memorised(profile, data, device=device, use_cache=not args.no_cache)
        ran = {**info, "data": data_info, "run_seconds": time.perf_counter() - started}
        write_json(out / "quality.json", {**quality, "memorised": {**memorised, "run": ran}})
        write_readme(out, command)
        return 0

    parts: dict[str, float] = {}
    with section("quality"):
        (quality, context), parts["quality_s"] = timed(lambda: run_quality(profile, data, device=device,
                                                                           use_cache=not args.no_cache))
    quality = {**info, "data": data_info, "seeds": profile.seeds, **quality}
    write_json(out / "quality.json", quality)

    speed_result, parts["speed_s"] = timed(lambda: run_speed(profile, data, quality, context.original, device,
                                                             whole_split))
    speed_result = {**info, "data": data_info, **speed_result}
    write_json(out / "speed.json", speed_result)

    with section("α/λ sensitivity sweep"):
        sweep, parts["sweep_s"] = timed(lambda: run_sweep(profile, data, context, device=device))
        parts["sweep_s"] += timed(lambda: plot_sweep(sweep, out / "sweep.png"))[1]
    write_json(out / "sweep.json", {**info, **sweep})

    total = time.perf_counter() - started
    run_time = {"run_seconds": total, "run_parts": parts, **trainings(quality)}
    # The whole run's time is known only now: both results carry it (the README prints it).
    write_json(out / "quality.json", {**quality, "run_time": run_time})
    write_json(out / "speed.json", {**speed_result, "run_time": run_time})
    write_readme(out, command)
    headline = ", ".join(f"{k}={v:.3g}" for k, v in speed_result["headline"].items() if v is not None)
    print(f"done in {total / 60:.1f} min; headline: {headline}", flush=True)
    return 0


def run_speed(profile: Profile, data: BenchData, quality: dict[str, Any], original: torch.nn.Module,
              device: torch.device, whole_split: bool) -> dict[str, Any]:
    """Every speed part on the quality run's seed-0 original; retraining timed by the quality run."""
    retrain = retraining_seconds(quality, len(data.speed_train), profile.request_size)
    measured = speed.measure(profile, original, data.speed_train, data.test, device,
                             retrain_s=retrain["retrain_s"], recipe=quality["recipe"],
                             pipeline=profile.pipeline_overhead and whole_split)
    measured["retrain"].update(retrain)
    return {**measured, **measured["headline"]}


def write_readme(out: Path, command: str) -> Path:
    """Regenerate the tables: benchmarks/README.md for the published results, else out/README.md."""
    if out.resolve() == DEFAULT_RESULTS.resolve():
        return readme.write_readme(out, BENCH_DIR / "README.md", "results/", command)
    return readme.write_readme(out, out / "README.md", "", command)


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    sys.exit(main())
