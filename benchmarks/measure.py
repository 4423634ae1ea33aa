"""Measurements of the pipeline's costs (figures for the README, not tests); run from the repository root.

  python -m benchmarks.measure unlearn  --model DIR [--forget 100]
      the unlearn step with cached full-data importances versus the same step computing them;
  python -m benchmarks.measure overhead --model DIR [--subjects 10]
      a scheduled run through kfp.local versus the same steps called directly (both in a fresh
      process, with the parent's importances cached and no refresh, so both do the same work).

DIR is a trained model directory (`lethe train` or the demo's); its card names the data set.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.timing import timed

ROOT = Path(__file__).resolve().parents[1]  # the repository root: `-m benchmarks.measure` imports from it


def _sample_ids(model_dir: str, count: int, seed: int = 0) -> list[str]:
    import torch

    from lethe.data import load_dataset
    from lethe.models import read_card

    train = load_dataset(read_card(model_dir).dataset, "train")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:count]
    return [train.ids[i] for i in sorted(order.tolist())]


def measure_unlearn(model_dir: str, forget: int, alpha: str, batch_size: int) -> dict[str, Any]:
    from lethe.steps.full_importances import compute_importances
    from lethe.steps.unlearn import unlearn

    ids = _sample_ids(model_dir, forget)
    with tempfile.TemporaryDirectory(prefix="lethe-measure-") as tmp:
        info, full_pass = timed(lambda: compute_importances(
            model_dir, out_path=Path(tmp) / "d", batch_size=batch_size, cache_root=str(Path(tmp) / "cache"),
            progress=False))
        timings = {}
        cached_file = Path(tmp) / "d" / "importances.safetensors"
        for label, importances in (("cached", cached_file), ("recomputed", None)):
            result, timings[label] = timed(partial(
                unlearn, model_dir, forget_ids=ids, scenario="subject", alpha=alpha, importances=importances,
                batch_size=batch_size, out_dir=Path(tmp) / label, progress=False))
            timings[f"{label}_alpha"] = result.alpha
    return {"measure": "unlearn", "model": model_dir, "forget_samples": forget, "alpha": alpha,
            "batch_size": batch_size, "full_data_pass_s": round(full_pass, 2),
            "num_samples": info.num_samples, "unlearn_cached_s": round(timings["cached"], 2),
            "unlearn_recomputed_s": round(timings["recomputed"], 2),
            "speedup": round(timings["recomputed"] / timings["cached"], 1),
            "alphas": [timings["cached_alpha"], timings["recomputed_alpha"]]}


def _prepare_home(home: Path, model_dir: str, subjects: int) -> None:
    """A fresh ledger and registry with `model_dir` as champion and requests for `subjects` subjects."""
    from lethe.data import load_dataset, subject_map
    from lethe.ledger import Ledger
    from lethe.models import read_card
    from lethe.registry import PromotionDecision, Registry
    from lethe.steps.full_importances import compute_importances

    Registry().register_version(model_dir, gate=PromotionDecision(True, ("base model",)), scenario="subject")
    dataset = read_card(model_dir).dataset
    ledger = Ledger()
    for subject in sorted(subject_map(load_dataset(dataset, "train")))[:subjects]:
        ledger.add(subject)
    compute_importances(model_dir, progress=False)  # cached for both ways of running


def run_direct(run_id: str) -> None:
    """The scheduled run's steps, called in this process one after the other."""
    from components.adapters import evaluate_from_spec, unlearn_from_spec
    from lethe.steps.collect import collect_requests
    from lethe.steps.finalize import finalize_requests
    from lethe.steps.full_importances import compute_importances
    from lethe.steps.register import register_and_gate

    work = Path(tempfile.mkdtemp(prefix="lethe-direct-"))
    try:
        collect_requests(run_id, forget_path=work / "forget", model_dir=work / "parent")
        compute_importances(work / "parent", out_path=work / "importances", progress=False)
        unlearn_from_spec(work / "parent", work / "forget", work / "importances", work / "candidate",
                          batch_size=1, progress=False)
        evaluate_from_spec(work / "candidate", work / "parent", work / "forget", work / "evaluation",
                           progress=False)
        register_and_gate(work / "candidate", work / "evaluation", work / "forget", run_id=run_id,
                          importances_path=work / "importances")
        _, settle_s = timed(partial(finalize_requests, run_id, settle_only=True))  # the settle task
        print(json.dumps({"settle_s": round(settle_s, 3)}))
        finalize_requests(run_id, pipeline_state="SUCCEEDED")  # the exit task
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_cli(env: dict[str, str]) -> tuple[float, float, list[str]]:
    """`lethe pipeline run --local scheduled` as a user runs it (a fresh process: its imports and the
    warm server's start included): its wall time, the time from the gate's decision (register-and-gate
    ends) to the settled requests, read from its progress lines, and its tasks in order."""
    command = [sys.executable, "-m", "lethe.cli", "pipeline", "run", "--local", "scheduled",
               "-p", "refresh=false"]
    ended: dict[str, float] = {}
    started = time.perf_counter()
    with subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as process:
        for line in process.stderr:
            fields = line.split()
            if len(fields) == 2 and fields[1] in ("SUCCESS", "FAILURE"):
                ended[fields[0]] = time.perf_counter()
        said = process.stdout.read()
    seconds = time.perf_counter() - started
    if process.returncode != 0 or not {"register-and-gate", "settle-requests"} <= set(ended):
        raise SystemExit(f"the kfp.local run failed (exit {process.returncode}): {said[-1500:]}")
    return seconds, ended["settle-requests"] - ended["register-and-gate"], list(ended)


def measure_overhead(model_dir: str, subjects: int, repeats: int = 2) -> dict[str, Any]:
    """The scheduled run through kfp.local (the CLI, a fresh process) against its steps called directly
    (a fresh process), each on a fresh home with the same requests, alternated `repeats` times; the best
    of each way (as timeit reports), every run kept."""
    results: dict[str, Any] = {"measure": "overhead", "model": model_dir, "subjects": subjects,
                               "direct_runs_s": [], "kfp_local_runs_s": [], "settle_runs_s": [],
                               "direct_settle_runs_s": []}
    with tempfile.TemporaryDirectory(prefix="lethe-measure-") as tmp:
        for repeat, way in itertools.product(range(repeats), ("direct", "kfp_local")):
            home = Path(tmp) / f"{way}-{repeat}"
            env = {**os.environ, "LETHE_HOME": str(home), "LETHE_DEMO": "1",
                   "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
            for name in ("LETHE_LEDGER_URL", "LETHE_TRACKING_URI", "MLFLOW_TRACKING_URI", "LETHE_ARTIFACTS"):
                env.pop(name, None)
            subprocess.run([sys.executable, "-m", "benchmarks.measure", "_prepare", "--model", model_dir,
                            "--subjects", str(subjects)], env=env, check=True, cwd=ROOT)
            if way == "direct":
                direct = [sys.executable, "-m", "benchmarks.measure", "_direct"]
                done, seconds = timed(partial(subprocess.run, direct, env=env, check=True, cwd=ROOT,
                                              stdout=subprocess.PIPE, text=True))
                results["direct_runs_s"].append(round(seconds, 2))
                results["direct_settle_runs_s"].append(json.loads(done.stdout.splitlines()[-1])["settle_s"])
            else:
                seconds, settled, results["tasks"] = _run_cli(env)
                results["kfp_local_runs_s"].append(round(seconds, 2))
                results["settle_runs_s"].append(round(settled, 2))
    for key in ("direct", "direct_settle", "kfp_local"):
        results[f"{key}_s"] = min(results[f"{key}_runs_s"])
    results["settle_seconds"] = min(results["settle_runs_s"])
    extra = results["kfp_local_s"] - results["direct_s"]
    results["overhead_share"] = round(extra / results["kfp_local_s"], 3)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.measure", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["unlearn", "overhead", "_prepare", "_direct"])
    parser.add_argument("--model", help="a trained model directory")
    parser.add_argument("--forget", type=int, default=100, help="forget samples (unlearn)")
    parser.add_argument("--alpha", default="assd", help="α of the unlearn measurement (number, assd, search)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--subjects", type=int, default=10, help="subjects with a request (overhead)")
    args = parser.parse_args(argv)
    if args.what == "_direct":
        from lethe.cli import exit_without_teardown

        run_direct("measure-direct")
        exit_without_teardown(0)  # as the CLI it is compared with ends
    if not args.model:
        parser.error("--model is required")
    model = str(Path(args.model).resolve())
    if args.what == "_prepare":
        _prepare_home(Path(os.environ["LETHE_HOME"]), model, args.subjects)
        return 0
    result = (measure_unlearn(model, args.forget, args.alpha, args.batch_size) if args.what == "unlearn"
              else measure_overhead(model, args.subjects))
    result["load_average"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
