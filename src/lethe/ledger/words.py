"""A certificate's outcome in words: what changed between the parent and the candidate on the person's
samples, and what the per-example test concluded, so a reader sees when nothing moved and why."""

from __future__ import annotations

from typing import Any

#: Forget accuracy moved by less than this: "did not change" (percentage points).
UNCHANGED_POINTS = 0.5

OUTCOME_WORDS = {
    "removed": "the parent had memorised the person's samples and the new version no longer shows it",
    "not_memorised": "the parent never memorised the person's samples, so there was nothing to remove",
    "still_flagged": "the new version still shows signs of the person's samples",
    "inconclusive": "the membership test could not tell whether the parent had memorised them",
}


def _percent(value: Any) -> str:
    return f"{100 * float(value):.1f}%" if isinstance(value, (int, float)) else "not measured"


def outcome_in_words(outcome: dict[str, Any], membership: dict[str, Any]) -> str:
    """One paragraph: forget accuracy before and after, and the per-example outcome."""
    before = (outcome.get("parent_metrics") or {}).get("forget_accuracy")
    after = (outcome.get("metrics") or {}).get("forget_accuracy")
    sentences = []
    if isinstance(before, (int, float)) and isinstance(after, (int, float)):
        if abs(before - after) * 100 < UNCHANGED_POINTS:
            sentences.append(f"The model did not change on the person's samples: forget accuracy "
                             f"{_percent(before)} before and {_percent(after)} after.")
        else:
            sentences.append(f"Forget accuracy on the person's samples went from {_percent(before)} to "
                             f"{_percent(after)}.")
    result = membership.get("outcome")
    if result in OUTCOME_WORDS:
        sentences.append(f"Per-example membership test: {result.replace('_', ' ')}; {OUTCOME_WORDS[result]}.")
    elif membership.get("evidence"):
        sentences.append(f"Membership evidence: {membership['evidence']}.")
    else:
        sentences.append("No membership test was recorded for this request.")
    if result == "not_memorised":
        sentences.append("The request is honoured because the serving version does not hold what the "
                         "person's samples would have taught it.")
    return " ".join(sentences)
