"""`lethe demo`: the whole product on one machine, from a fresh clone, in a few minutes.

1. a data set: Fashion-MNIST (the Debian package `dataset-fashion-mnist`, which `make setup`
   installs), else the bundled digits;
2. a `convnet` trained on it (reused when already trained), registered in MLflow as `champion`, and
   its reference models for the per-example membership test;
3. erasure requests for a few subjects (synthetic subject map), and one for a subject the data
   does not know: refused when filed, as `lethe request add` refuses it, so it never reaches a run;
4. the scheduled deletion pipeline, run through kfp.local: collect → importances (cached) →
   unlearn → evaluate → register + gate → refresh importances → finalize the requests;
5. one whole class forgotten on demand (the unlearning pipeline, scenario `class`): a class is a
   product decision, not a person's request, so it is not in the ledger and the gate judges it
   by its own criteria; one scheduled run handles one batch of subjects;
6. a last scheduled run with nothing pending (a clean no-op);
7. a summary: accuracies and member rates before/after, the gate, the champion, the requests'
   states, where each Evidently report lies (`lethe.kfp.summary`).

Everything lives under `<LETHE_HOME>/demo` (ledger, MLflow, artifacts, pipeline root), with the
demo's public subject key (LETHE_DEMO=1). The trained model and the importances cache are kept
between runs; the ledger and the registry start afresh each time. kfp is imported only when the
pipelines run (`lethe.kfp.local`), so `lethe --help` never loads it.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lethe.config import environment, settings
from lethe.errors import DataError, PipelineError
from lethe.kfp.summary import (
    membership_lines,
    request_entry,
    requests_table,
    table,
    version_entry,
    versions_table,
)

PREFERRED_DATASET = "fashion-mnist"
FALLBACK_DATASET = "digits"
ARCH = "convnet"
EPOCHS = {"fashion-mnist": 3, "digits": 6}
DEMO_SUBJECTS = 10  # 100 samples of Fashion-MNIST (ten per synthetic subject)
UNKNOWN_SUBJECT = "subject-not-in-the-data"
FORGET_CLASS = 9  # Fashion-MNIST "Ankle boot", digits "9"
# Settings that could point the demo at real services: the demo always uses the embedded ones.
EMBEDDED = ("LETHE_LEDGER_URL", "LETHE_TRACKING_URI", "MLFLOW_TRACKING_URI", "LETHE_ARTIFACTS",
            "LETHE_SUBJECT_KEY", "LETHE_MODEL_NAME", "LETHE_DATA_DIR")
# Kept between demo runs: what is expensive to rebuild and safe to reuse.
KEPT = ("models", "data")
# Kept under the artifacts: the importances cache and the audit's reference models (keyed by the
# model's fingerprint, so a retrained demo model gets its own).
KEPT_ARTIFACTS = ("importances", "audit")
REFERENCE_MODELS = 4  # the per-example membership test's reference models for the demo's champion


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class DemoOptions:
    home: Path | None = None  # default <LETHE_HOME>/demo
    dataset: str | None = None  # default Fashion-MNIST, else digits
    epochs: int | None = None
    subjects: int = DEMO_SUBJECTS
    forget_class: int = FORGET_CLASS
    retrain: bool = False
    progress: bool = True


@dataclass
class DemoResult:
    home: Path
    dataset: str
    fallback_reason: str | None
    model_dir: Path
    trained: bool
    runs: list[dict[str, Any]] = field(default_factory=list)  # one per pipeline run
    versions: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # requests refused at filing, and why
    champion: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    references: dict[str, Any] | None = None  # the reference models (`ensure_references`)

    @property
    def succeeded(self) -> bool:
        return all(run["succeeded"] for run in self.runs)


def demo_environment(home: Path) -> contextlib.AbstractContextManager[None]:
    """LETHE_HOME=home, LETHE_DEMO=1 and embedded defaults, for this process and the pipeline's tasks."""
    return environment({**{name: "" for name in EMBEDDED},  # empty means unset to lethe.config
                        "LETHE_HOME": str(home), "LETHE_DEMO": "1",
                        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"})  # the demo shows its own progress


def reset_state(home: Path) -> None:
    """A fresh ledger, registry and pipeline root; the model and the importances cache stay."""
    home.mkdir(parents=True, exist_ok=True)
    for entry in home.iterdir():
        if entry.name in KEPT:
            continue
        if entry.name == "artifacts" and entry.is_dir():
            for part in entry.iterdir():
                if part.name not in KEPT_ARTIFACTS:
                    shutil.rmtree(part) if part.is_dir() else part.unlink()
            continue
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def choose_dataset(wanted: str | None) -> tuple[str, str | None]:
    """The data set to use and, when falling back to digits, why (Fashion-MNIST comes from the Debian
    package `dataset-fashion-mnist`, which `make setup` installs)."""
    from lethe.data import load_dataset

    if wanted:
        return wanted, None
    try:
        load_dataset(PREFERRED_DATASET, "train")
        return PREFERRED_DATASET, None
    except DataError as exc:
        return FALLBACK_DATASET, str(exc)


def ensure_model(home: Path, dataset: str, *, epochs: int, retrain: bool,
                 progress: bool) -> tuple[Path, bool]:
    """The demo's trained model directory (trained now unless already there)."""
    from lethe.errors import ModelError
    from lethe.models import is_model_dir, verify_model_dir
    from lethe.models.baseline import train_model_dir

    model_dir = home / "models" / f"{dataset}-{ARCH}"
    if is_model_dir(model_dir) and not retrain:
        try:
            verify_model_dir(model_dir)
            return model_dir, False
        except ModelError:  # kept from an older lethe (no sidecars) or damaged: train it again
            pass
    if model_dir.exists():
        shutil.rmtree(model_dir)
    record = train_model_dir(dataset, ARCH, model_dir, epochs=epochs, seed=0, progress=progress)
    say(f"    trained {ARCH} on {dataset}: test accuracy {record['test_accuracy']:.4f} "
        f"in {record['seconds']:.0f} s")
    return model_dir, True


def ensure_references(model_dir: Path, *, k: int = REFERENCE_MODELS,
                      progress: bool) -> tuple[dict[str, Any], bool]:
    """The champion's reference models, as `lethe audit prepare --k K` makes them (stored under the
    demo's artifacts and kept between runs): (what the summary says of them, whether trained now)."""
    from lethe.audit import find_references, prepare_references

    trained = find_references(model_dir) is None
    references = prepare_references(model_dir, k=k, progress=progress)
    return {"k": references.k, "epochs": references.epochs, "uri": references.uri}, trained


def file_requests(dataset: str, count: int) -> tuple[list[str], list[str]]:
    """Erasure requests for the first `count` subjects of the synthetic map, each checked as `lethe
    request add` checks it, and one for an unknown subject, which that check refuses: (the ids of
    the requests filed, the refusals)."""
    from lethe.data import load_dataset, subject_map
    from lethe.errors import UnknownSamplesError
    from lethe.ledger import Ledger
    from lethe.steps.collect import check_request

    subjects = sorted(subject_map(load_dataset(dataset, "train")))[:count]
    ledger = Ledger()

    def check(subject_hashes: Any, sample_ids: Any) -> None:
        check_request(subject_hashes, sample_ids, ledger=ledger)

    filed = [ledger.add(subject, check=check).request.id for subject in subjects]
    refused = []
    try:
        filed.append(ledger.add(UNKNOWN_SUBJECT, check=check).request.id)
    except UnknownSamplesError as exc:
        refused.append(f"a request for a subject the data does not know: {exc}")
    return filed, refused


def collect_versions() -> tuple[list[dict[str, Any]], str | None]:
    """Every registered version with the numbers a reviewer sees (read back from MLflow)."""
    from lethe.registry import Registry

    registry = Registry()
    return [version_entry(registry, info) for info in registry.versions()], registry.champion_version()


def collect_requests_states() -> list[dict[str, Any]]:
    from lethe.ledger import Ledger

    return [request_entry(r) for r in Ledger().list_requests()]


def run_pipeline(name: str, params: dict[str, Any], home: Path, label: str) -> dict[str, Any]:
    """One kfp.local run with a progress line per task; task output goes to a log file."""
    from lethe.kfp.local import run_local

    log_path = home / "logs" / f"{label}.log"
    started: dict[str, float] = {}

    def on_task(task: str, state: str) -> None:
        if state == "RUNNING":
            started[task] = time.perf_counter()
            return
        took = time.perf_counter() - started.get(task, time.perf_counter())
        say(f"    {task:24s} {state:8s} {took:6.1f} s")

    run = run_local(name, params, pipeline_root=home / "kfp", log_path=log_path, on_task=on_task)
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
    from lethe.kfp.catalog import import_pipelines

    if options.subjects < 1:
        raise PipelineError("the demo needs at least one subject")
    import_pipelines()  # before any work: one clear error when the pipelines are not installed
    result = run_demo(options)
    print(summary(result))
    return 0 if result.succeeded else 1


def summary(result: DemoResult) -> str:
    out = []
    fallback = f" (fallback: {result.fallback_reason})" if result.fallback_reason else ""
    source = f"{result.dataset}{fallback}"
    out.append(f"data set: {source}")
    out.append(f"model: {result.model_dir} ({'trained now' if result.trained else 'reused'})")
    out.append("")
    out.extend(versions_table(result.versions))
    out.append(f"champion: version {result.champion}")
    if any(v.get("review") == "pending" for v in result.versions):
        out.append("versions that failed the gate wait for a reviewer: "
                   f"LETHE_HOME={result.home} LETHE_DEMO=1 lethe review approve|reject VERSION "
                   "--by NAME --reason TEXT")
    out.append("")
    out.extend(requests_table(result.requests))
    for refusal in result.refused:
        out.append(f"refused when filed: {refusal}")
    out.extend(membership_lines(result.versions, result.references))
    out.append("")
    out.append("Evidently reports:")
    for v in result.versions:
        if v.get("report"):
            out.append(f"  version {v['version']} ({v['scenario']}): {v['report']}")
    out.append("")
    rows = [["pipeline run", "result", "seconds", "tasks"]]
    for run in result.runs:
        rows.append([run["label"], "ok" if run["succeeded"] else "FAILED", f"{run['seconds']:.1f}",
                     str(len(run["tasks"]))])
    out.append(table(rows))
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    out.append(f"time: {timing}")
    return "\n".join(out)
