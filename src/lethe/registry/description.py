"""A version's description, in words a reviewer reads in MLflow's UI: what it is, what it honours,
why it was (not) promoted; and the same description after a reviewer's decision."""

from __future__ import annotations

from collections.abc import Mapping

from lethe.registry.metadata import PromotionDecision

# The description's promotion line of a version awaiting review; a decision replaces it.
AWAITS_REVIEW = "Not promoted: waits for a reviewer (`lethe review approve|reject`)."
CHAMPION_MOVED_ON = "Not promoted: the champion moved on; re-run from the current champion."
#: Metrics shown in the description (the run holds all of them).
SHOWN_METRICS = 16


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def describe(*, parent: str | None, scenario: str, alpha: float | None, lam: float | None,
             method: str | None, total: int, new: int, gate: PromotionDecision, metrics: Mapping[str, float],
             importances_uri: str | None, promoted: bool) -> str:
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
