"""What a pipeline run did, from the registry and the ledger: the version it registered (with its
numbers before → after) and the requests it changed. `lethe pipeline run --local` prints it for the
run, and the demo for all of its runs. No kfp here.
"""

from __future__ import annotations

import json
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabulate import tabulate


def table(rows: list[list[str]]) -> str:
    """The first row as the header, a rule under it, every cell as it is (no number formatting)."""
    return tabulate(rows[1:], headers=rows[0], tablefmt="simple", disable_numparse=True)


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
        from lethe.registry.client import quiet_mlflow

        with tempfile.TemporaryDirectory(prefix="lethe-demo-") as tmp, quiet_mlflow():
            path = registry.client.download_artifacts(info.run_id, "evidence/metrics.json", tmp)
            entry["metrics"] = json.loads(Path(path).read_text())
        report = f"{run.info.artifact_uri}/evidence/report.html"
        entry["report"] = urlparse(report).path if report.startswith("file:") else report
    return entry


def request_entry(request: Any) -> dict[str, Any]:
    """One erasure request (`lethe.ledger.ErasureRequest`) as the summary shows it."""
    return {"id": request.id, "state": request.state, "version": request.model_version,
            "reason": request.reason, "received": request.received_at.isoformat(timespec="seconds")}


def _pct(value: Any) -> str:
    return f"{100 * value:5.1f}%" if isinstance(value, (int, float)) else "    -"


def _change(metrics: dict[str, Any], key: str, *, mia: bool = False) -> str:
    def get(role: str) -> Any:
        block = metrics.get(role) or {}
        return (block.get("mia") or {}).get(key) if mia else block.get(key)

    return f"{_pct(get('parent'))} → {_pct(get('candidate'))}"


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
    out.append(table(rows))
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
            table(rows)]


def requests_table(requests: list[dict[str, Any]]) -> list[str]:
    """The requests (`request_entry`): state, version, and the reason in full (it says what to fix)."""
    rows = [["request", "state", "version", "reason"]]
    for r in requests:
        rows.append([r["id"][:8], r["state"], r["version"] or "-", r["reason"] or "-"])
    return ["erasure requests:", table(rows)]


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


def prepare_summary() -> threading.Thread:
    """Import MLflow and open the registry's client in a background thread, while a run works: the
    summary after it then costs its queries only (the imports and the store's start are ~6 s on two
    cores, otherwise spent after the run). An error here is left for `summarize_run` to report."""

    def prepare() -> None:
        from lethe.errors import LetheError
        from lethe.registry.client import get_client

        try:
            get_client()
        except LetheError:
            return

    thread = threading.Thread(target=prepare, name="lethe-summary-prepare", daemon=True)
    thread.start()
    return thread


def summarize_run(run_id: str) -> RunSummary:
    """The summary of run `run_id` from the registry (its RUN_TAG) and the ledger (its history)."""
    from lethe.ledger import Ledger
    from lethe.registry import Registry

    registry = Registry()
    version = registry.version_of_run(run_id)
    versions = [version_entry(registry, version)] if version else []
    requests = [request_entry(r) for r in Ledger().requests_of_run(run_id)]
    return RunSummary(run_id, versions, requests, registry.champion_version())
