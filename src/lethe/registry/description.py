"""A version's description, in words a reviewer reads in MLflow's UI: what it is, what it honours,
why it was (not) promoted; and the same description after a reviewer's decision."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lethe.registry.metadata import PromotionDecision

# The description's promotion line of a version awaiting review; a decision replaces it.
AWAITS_REVIEW = "Not promoted: waits for a reviewer (`lethe review approve|reject`)."
CHAMPION_MOVED_ON = "Not promoted: the champion moved on; re-run from the current champion."
#: Metrics shown in the description (the run holds all of them).
SHOWN_METRICS = 16


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def rung_line(rung: Mapping[str, Any]) -> str:
    """One rung of the ladder in words: `repair (retain_finetune, 10% of the recipe, 0.3 s): pass`."""
    cost = [str(rung["method"])] if rung.get("method") else []
    if isinstance(rung.get("share_of_recipe"), (int, float)):
        cost.append(f"{100 * rung['share_of_recipe']:.3g}% of the recipe")
    if isinstance(rung.get("seconds"), (int, float)):
        cost.append(f"{rung['seconds']:.3g} s")
    if isinstance(rung.get("flagged_share"), (int, float)):
        cost.append(f"{100 * rung['flagged_share']:.3g}% of the forget samples flagged")
    text = str(rung.get("rung", "?")) + (f" ({', '.join(cost)})" if cost else "")
    return text + (f": {rung['decision']}" if rung.get("decision") else "")


def ladder_line(rungs: Sequence[Mapping[str, Any]]) -> str:
    """The ladder's rungs that made a version, in order, each with its cost and the gate's verdict."""
    return "Ladder: " + " → ".join(rung_line(r) for r in rungs) + "."


def describe(*, parent: str | None, scenario: str, alpha: float | None, lam: float | None,
             method: str | None, total: int, new: int, gate: PromotionDecision, metrics: Mapping[str, float],
             importances_uri: str | None, promoted: bool,
             ladder: Sequence[Mapping[str, Any]] = ()) -> str:
    """The version's description: what it is, what it honours, why it was (not) promoted."""
    if parent is None:
        lines = [f"Base model (scenario: {scenario}); it honours no erasure request yet."]
    else:
        how = f" with {method.upper()}" if method else ""
        knobs = ", ".join(p for p in (f"α={_fmt(alpha)}" if alpha is not None else "",
                                      f"λ={_fmt(lam)}" if lam is not None else "") if p)
        lines = [f"Unlearned from version {parent}{how}" + (f" ({knobs})" if knobs else "")
                 + f"; scenario: {scenario}.",
                 f"Honours {total} erasure request(s), {new} new in this version."]
    if ladder:
        lines.append(ladder_line(ladder))
    verdict = "PASS" if gate.passed else "FAIL"
    lines.append(f"Gate: {verdict}" + (" — " + "; ".join(gate.reasons) if gate.reasons else "."))
    lines.append("Promoted to champion." if promoted
                 else AWAITS_REVIEW if not gate.passed else CHAMPION_MOVED_ON)
    if metrics:
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in list(metrics.items())[:SHOWN_METRICS])
        lines.append(f"Metrics: {shown}.")
    if importances_uri:
        lines.append(f"Importances of the full data: {importances_uri}.")
    return "\n".join(lines)


def reviewed_description(description: str, decision: str, by: str, at: str, reason: str) -> str:
    """The description after a reviewer's decision: the line saying it waits for one is replaced by
    the decision (appended when no such line is there), so the description stays true."""
    outcome = "promoted to champion" if decision == "approved" else "not promoted"
    line = f"{decision.capitalize()} by {by} at {at}: {reason} ({outcome})."
    lines = description.split("\n")
    for index, text in enumerate(lines):
        if text in (AWAITS_REVIEW, CHAMPION_MOVED_ON):
            lines[index] = line
            return "\n".join(lines)
    return f"{description}\n{line}" if description else line
