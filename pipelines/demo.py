"""`lethe demo`: the whole product on one machine, from a fresh clone, in a few minutes.

1. a data set: Fashion-MNIST (the Debian package `dataset-fashion-mnist`), else the bundled digits;
2. a `convnet` trained on it (reused when already trained), registered in MLflow as `champion`;
3. erasure requests for a few subjects (synthetic subject map), and one for a subject the data
   does not know, refused when filed (as `lethe request add` refuses it);
4. the scheduled deletion pipeline, run through kfp.local: collect → importances (cached) →
   unlearn → evaluate → register + gate → refresh importances → finalize the requests;
5. one whole class forgotten on demand (the unlearning pipeline, scenario `class`): a class is a
   product decision, not a person's request, so it is not in the ledger and the gate judges it
   by its own criteria; one scheduled run handles one batch of subjects;
6. a last scheduled run with nothing pending (a clean no-op);
7. a summary: accuracies and member rates before/after, the gate, the champion, the requests'
   states, where each Evidently report lies.

The pipeline runs live here, beside the pipelines (they need kfp); the rest of the demo (its
state, model, requests and summary) is library code in `lethe.demo`, which never imports kfp.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lethe.config import settings
from lethe.demo import (
    ARCH,
    EPOCHS,
    DemoOptions,
    DemoResult,
    choose_dataset,
    collect_requests_states,
    collect_versions,
    demo_environment,
    ensure_model,
    ensure_references,
    file_requests,
    reset_state,
    say,
    summary,
)
from lethe.errors import PipelineError
from pipelines import tooling

__all__ = ["main", "run_demo", "run_pipeline"]


def run_pipeline(name: str, params: dict[str, Any], home: Path, label: str) -> dict[str, Any]:
    """One kfp.local run with a progress line per task; task output goes to a log file."""
    log_path = home / "logs" / f"{label}.log"
    started: dict[str, float] = {}

    def on_task(task: str, state: str) -> None:
        if state == "RUNNING":
            started[task] = time.perf_counter()
            return
        took = time.perf_counter() - started.get(task, time.perf_counter())
        say(f"    {task:24s} {state:8s} {took:6.1f} s")

    run = tooling.run_local(name, params, pipeline_root=home / "kfp", log_path=log_path, on_task=on_task)
    say(f"    {'pipeline ' + name:24s} {'SUCCESS' if run.succeeded else 'FAILURE':8s} {run.seconds:6.1f} s"
        + ("" if run.succeeded else f"  ({run.error}; log: {log_path})"))
    return {"label": label, "pipeline": name, "succeeded": run.succeeded, "seconds": run.seconds,
            "tasks": run.tasks, "error": run.error, "log": str(log_path)}


def run_demo(options: DemoOptions) -> DemoResult:
    home = (options.home or settings().home / "demo").resolve()
    clock = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        seconds[name] = round(now - since, 1)
        return now

    with demo_environment(home):
        say(f"lethe demo — everything under {home}")
        reset_state(home)
        say("[1/6] data set")
        dataset, fallback = choose_dataset(options.dataset)
        if fallback:
            say(f"    Fashion-MNIST is not available ({fallback}); using the bundled digits instead")
        say(f"    {dataset}")
        mark = lap("dataset", clock)

        say(f"[2/6] model: {ARCH} on {dataset}")
        epochs = options.epochs or EPOCHS.get(dataset, 3)
        model_dir, trained = ensure_model(home, dataset, epochs=epochs, retrain=options.retrain,
                                          progress=options.progress)
        if not trained:
            say(f"    reusing the trained model at {model_dir}")
        from lethe.registry import PromotionDecision, Registry

        base = Registry().register_version(model_dir, gate=PromotionDecision(True, ("base model",)),
                                           scenario="base", run_name="base-model")
        say(f"    registered as version {base.version}, alias champion")
        mark = lap("model", mark)
        references, trained_references = ensure_references(model_dir, progress=options.progress)
        say(f"    {references['k']} reference models for the per-example membership test "
            f"({'trained now' if trained_references else 'reused'}, {references['epochs']} epochs each)")
        mark = lap("reference models", mark)

        say(f"[3/6] erasure requests: {options.subjects} subjects, and one subject the data does not know")
        request_ids, refused = file_requests(dataset, options.subjects)
        say(f"    {len(request_ids)} requests pending")
        for refusal in refused:
            say(f"    refused when filed: {refusal}")
        mark = lap("requests", mark)

        runs = []
        say("[4/6] scheduled deletion run (kfp.local)")
        runs.append(run_pipeline("scheduled", {}, home, "scheduled-subjects"))
        mark = lap("scheduled run", mark)

        say(f"[5/6] forget class {options.forget_class} on demand (kfp.local)")
        runs.append(run_pipeline("unlearning", {"model": "champion", "scenario": "class",
                                                "forget_class": options.forget_class, "refresh": False},
                                 home, "class"))
        mark = lap("class run", mark)

        say("[6/6] scheduled run with nothing pending")
        runs.append(run_pipeline("scheduled", {}, home, "scheduled-nothing-pending"))
        mark = lap("no-op run", mark)

        versions, champion = collect_versions()
        requests = collect_requests_states()
    seconds["total"] = round(time.perf_counter() - clock, 1)
    return DemoResult(home=home, dataset=dataset, fallback_reason=fallback, model_dir=model_dir,
                      trained=trained, runs=runs, versions=versions, requests=requests, refused=refused,
                      champion=champion, seconds=seconds, references=references)


def main(options: DemoOptions) -> int:
    if options.subjects < 1:
        raise PipelineError("the demo needs at least one subject")
    result = run_demo(options)
    print(summary(result))
    return 0 if result.succeeded else 1
