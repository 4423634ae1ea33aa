"""The demo's library half: its settings, state, model, requests and summary (no kfp here).

`lethe demo` runs the whole product on one machine; the part that runs the pipelines lives in
`pipelines.demo` (kfp is imported only there), which calls these helpers:
1. a data set: Fashion-MNIST (the Debian package `dataset-fashion-mnist`), else the bundled digits;
2. a `convnet` trained on it (reused when already trained), registered in MLflow as `champion`;
3. erasure requests for a few subjects (synthetic subject map), and one for a subject the data
   does not know: refused when filed, as `lethe request add` refuses it, so it never reaches a run;
4-6. the pipelines, through kfp.local (see `pipelines.demo`);
7. a summary: accuracies and member rates before/after, the gate, the champion, the requests'
   states, where each Evidently report lies.

Everything lives under `<LETHE_HOME>/demo` (ledger, MLflow, artifacts, pipeline root), with the
demo's public subject key (LETHE_DEMO=1). The trained model and the importances cache are kept
between runs; the ledger and the registry start afresh each time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lethe.config import environment
from lethe.errors import DataError

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
    """The data set to use and, when falling back to digits, why."""
    from lethe.data import load_dataset

    if wanted:
        return wanted, None
    try:
        load_dataset(PREFERRED_DATASET, "train")
        return PREFERRED_DATASET, None
    except DataError as first:
        reason = str(first)
    if _apt_install("dataset-fashion-mnist"):
        try:
            load_dataset(PREFERRED_DATASET, "train")
            return PREFERRED_DATASET, None
        except DataError as exc:
            reason = str(exc)
    return FALLBACK_DATASET, reason


def _apt_install(package: str) -> bool:
    if shutil.which("apt-get") is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    say(f"installing the Debian package {package} ...")
    try:
        done = subprocess.run(["apt-get", "install", "-y", "-q", package], capture_output=True, timeout=300,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


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


def version_entry(registry: Any, info: Any) -> dict[str, Any]:
    """One registered version (`lethe.registry.VersionInfo`) with its metrics and report location."""
    from urllib.parse import urlparse

    from lethe.registry.tags import ALPHA_TAG, GATE_REASONS_TAG, SCENARIO_TAG

    entry: dict[str, Any] = {"version": info.version, "scenario": info.tags.get(SCENARIO_TAG),
                             "parent": info.parent_version, "gate": info.gate, "review": info.review,
                             "alpha": info.tags.get(ALPHA_TAG), "requests": len(info.request_ids),
                             "champion": info.is_champion, "reasons": info.tags.get(GATE_REASONS_TAG)}
    if info.parent_version and info.run_id:
        run = registry.client.get_run(info.run_id)
        with tempfile.TemporaryDirectory(prefix="lethe-demo-") as tmp:
            path = registry.client.download_artifacts(info.run_id, "evidence/metrics.json", tmp)
            entry["metrics"] = json.loads(Path(path).read_text())
        report = f"{run.info.artifact_uri}/evidence/report.html"
        entry["report"] = urlparse(report).path if report.startswith("file:") else report
    return entry


def request_entry(request: Any) -> dict[str, Any]:
    """One erasure request (`lethe.ledger.ErasureRequest`) as the summary shows it."""
    return {"id": request.id, "state": request.state, "version": request.model_version,
            "reason": request.reason, "received": request.received_at.isoformat(timespec="seconds")}


def collect_requests_states() -> list[dict[str, Any]]:
    from lethe.ledger import Ledger

    return [request_entry(r) for r in Ledger().list_requests()]


# --- the summary ----------------------------------------------------------------------------

def _pct(value: Any) -> str:
    return f"{100 * value:5.1f}%" if isinstance(value, (int, float)) else "    -"


def _change(metrics: dict[str, Any], key: str, *, mia: bool = False) -> str:
    def get(role: str) -> Any:
        block = metrics.get(role) or {}
        return (block.get("mia") or {}).get(key) if mia else block.get(key)

    return f"{_pct(get('parent'))} → {_pct(get('candidate'))}"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


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
    out.append(_table(rows))
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    out.append(f"time: {timing}")
    return "\n".join(out)


def versions_table(versions: list[dict[str, Any]]) -> list[str]:
    """The versions (`version_entry`), before → after, and the reasons of those that failed the gate."""
    out = []
    rows = [["version", "scenario", "forgets", "alpha", "retain acc", "test acc", "forget acc",
             "forget member rate", "held-out member rate", "gate", "champion"]]
    for v in versions:
        m = v.get("metrics") or {}
        if not m:
            rows.append([v["version"], "base model", "-", "-", "-", "-", "-", "-", "-", v["gate"] or "-",
                         "yes" if v["champion"] else "no"])
            continue
        forgets = m.get("num_samples", {}).get("forget", "-")
        alpha = v.get("alpha")
        gate = v["gate"] or "-"
        if v.get("review") == "pending":
            gate += " (review pending)"
        rows.append([v["version"], v["scenario"] or "-", str(forgets),
                     f"{float(alpha):.3g}" if alpha else "-",
                     _change(m, "retain_accuracy"), _change(m, "test_accuracy"),
                     _change(m, "forget_accuracy"),
                     _change(m, "forget_member_rate", mia=True), _change(m, "holdout_member_rate", mia=True),
                     gate, "yes" if v["champion"] else "no"])
    out.append("model versions (before → after):")
    out.append(_table(rows))
    reasons = [f"  version {v['version']}: {v['reasons']}" for v in versions
               if v.get("metrics") and v.get("gate") != "pass" and v.get("reasons")]
    if reasons:
        out.append("gate reasons:")
        out.extend(reasons)
    return out


def membership_lines(versions: list[dict[str, Any]], references: dict[str, Any] | None) -> list[str]:
    """Per request of the subject runs: the per-example test's outcome and the shares it flagged at 1%
    FPR before → after, next to held-out non-members (from each version's metrics.json)."""
    rows = [["request", "outcome", "flagged before → after", "held-out non-members before → after"]]
    for v in versions:
        per_example = (v.get("metrics") or {}).get("per_example") or {}
        for request_id, evidence in (per_example.get("requests") or {}).items():
            at = (evidence.get("fpr") or {}).get("0.01") or {}

            def share(role: str, at: dict[str, Any] = at) -> str:
                value = (at.get(role) or {})
                return f"{value['flagged']}/{value['n']}" if "n" in value else "-"

            def rate(role: str, at: dict[str, Any] = at) -> str:
                return _pct((at.get(role) or {}).get("share")).strip()

            rows.append([str(request_id)[:8], evidence.get("outcome", "-"),
                         f"{share('parent')} → {share('candidate')}",
                         f"{rate('parent_non_member')} → {rate('candidate_non_member')}"])
    if len(rows) == 1:
        if references is None:
            return []
        return [f"per-example membership test: {references['k']} reference models, no subject request "
                "evaluated"]
    how = f"{references['k']} reference models" if references else "the version's reference models"
    return ["", f"per-example membership test (offline LiRA against {how}, 1% false-positive rate):",
            _table(rows)]


def requests_table(requests: list[dict[str, Any]]) -> list[str]:
    """The requests (`request_entry`): state, version, and the reason in full (it says what to fix)."""
    rows = [["request", "state", "version", "reason"]]
    for r in requests:
        rows.append([r["id"][:8], r["state"], r["version"] or "-", r["reason"] or "-"])
    return ["erasure requests:", _table(rows)]


@dataclass
class RunSummary:
    """What one pipeline run did: the version it registered (if any), the requests it changed (by
    their state now), and the champion after it. `lethe pipeline run --local` prints it."""

    run_id: str
    versions: list[dict[str, Any]]
    requests: list[dict[str, Any]]
    champion: str | None

    @property
    def failed_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["state"] == "failed"]

    def text(self) -> str:
        out = versions_table(self.versions) if self.versions else ["no model version registered"]
        out.append(f"champion: version {self.champion or '-'}")
        if any(v.get("review") == "pending" for v in self.versions):
            out.append("a version that failed the gate waits for a reviewer: lethe review list; "
                       "lethe review approve|reject VERSION --by NAME --reason TEXT")
        if self.requests:
            out.extend(requests_table(self.requests))
            counts = {state: sum(r["state"] == state for r in self.requests)
                      for state in dict.fromkeys(r["state"] for r in self.requests)}
            out.append(f"{len(self.requests)} request(s): "
                       + ", ".join(f"{n} {state}" for state, n in counts.items()))
        return "\n".join(out)


def summarize_run(run_id: str) -> RunSummary:
    """The summary of run `run_id` from the registry (its RUN_TAG) and the ledger (its history)."""
    from lethe.ledger import Ledger
    from lethe.registry import Registry

    registry = Registry()
    version = registry.version_of_run(run_id)
    versions = [version_entry(registry, version)] if version else []
    requests = [request_entry(r) for r in Ledger().requests_of_run(run_id)]
    return RunSummary(run_id, versions, requests, registry.champion_version())
