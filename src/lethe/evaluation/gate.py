"""The promotion gate: a pure function from metrics to `pass` or `review`, with reasons.

A candidate passes only when every criterion of its scenario holds; each failed criterion is
spelled out with the numbers, so a reviewer sees exactly why a version waits for them.

Subject scenario: with the version's reference models, the per-example membership test decides
(`lethe.evaluation.per_example`): a request whose samples the candidate still flags is refused with its
remedy named; one the parent never memorised passes, and the notes say so instead of claiming a removal.
The population attack is then reported, not decisive (a person's images the parent never memorised
are recognised as well as any training image, which it cannot tell from memorisation). Without
reference models the population attack decides, and the notes say that it is weak.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from lethe.evaluation.thresholds import Thresholds, load_thresholds
from lethe.forgetting.decisions import GateVerdict
from lethe.forgetting.scenarios import scenario as scenario_row

#: Float slack for "at the limit": 0.99 - 0.97 is 0.020000000000000018, which is 2 points.
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Check:
    name: str
    value: float
    limit: float
    passed: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateDecision:
    decision: GateVerdict
    reasons: list[str]
    checks: list[Check] = field(default_factory=list)
    #: What the reviewer must read even when nothing failed (e.g. "not memorised", "the attack is weak").
    notes: list[str] = field(default_factory=list)
    #: Subject scenario: "per-example" (reference models) or "population" (no reference models).
    membership_test: str | None = None
    #: Per request (per-example test): {"outcome", "summary", "fpr": shares and thresholds per FPR}.
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.decision == "pass"

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "reasons": list(self.reasons),
                "checks": [c.to_dict() for c in self.checks], "notes": list(self.notes),
                "membership_test": self.membership_test,
                "requests": {k: dict(v) for k, v in self.requests.items()}}


def _pts(share: float) -> str:
    return f"{100 * share:.2f} points"


def _pct(share: float) -> str:
    return f"{100 * share:.2f}%"


def _check(name: str, value: float, limit: float, failure: str) -> Check:
    if not math.isfinite(value):  # a metric that could not be measured never passes
        return Check(name, float(value), float(limit), False,
                     f"{name.replace('_', ' ')} could not be measured (missing or NaN)")
    passed = value <= limit + TOLERANCE
    return Check(name, float(value), float(limit), passed, "" if passed else failure)


def _metric(metrics: dict[str, Any], key: str) -> float:
    value = metrics
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return float("nan")
        value = value[part]
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


#: Words for a subject decided by the population attack alone.
WEAK_ATTACK_NOTE = (
    "no reference models for this version: membership was tested only by the population attack "
    "(entropy/loss features), which sits near chance on a model that generalises and does not see a "
    "person's memorised (atypical or mislabelled) images; this is weak evidence of forgetting. Prepare "
    "the version's reference models (`lethe audit prepare`) for the per-example test")
#: What to do about a request whose samples the candidate still flags.
REMEDY = ("remedy: retrain without the request's samples (`lethe retrain`), or approve this version with a "
          "reason (`lethe review approve VERSION --by NAME --reason TEXT`)")


def _per_example_checks(per_example: Mapping[str, Any]) -> tuple[Check, list[str], dict[str, dict[str, Any]]]:
    requests = per_example.get("requests") or {}
    flagged = {rid: r for rid, r in requests.items() if r.get("outcome") == "still_flagged"}
    reason = "; ".join(f"request {rid}: {r.get('summary', 'still flagged')}" for rid, r in flagged.items())
    check = _check("per_example_still_flagged", float(len(flagged)), 0.0,
                   f"{reason}; {REMEDY}" if flagged else "")
    if not requests:
        check = _check("per_example_still_flagged", float("nan"), 0.0, "")
    if per_example.get("refused"):  # reference models that cannot judge a person: a human decides
        check = Check("per_example_still_flagged", float("nan"), 0.0, False, str(per_example["refused"]))
    notes = [f"request {rid}: {r.get('summary', r.get('outcome'))}" for rid, r in requests.items()
             if r.get("outcome") != "still_flagged"]
    summary = {rid: {"outcome": str(r.get("outcome")), "summary": str(r.get("summary", "")),
                     "fpr": dict(r.get("fpr") or {})} for rid, r in requests.items()}
    return check, notes, summary


def _forget_accuracy(parent: dict[str, Any], candidate: dict[str, Any], limit: float) -> Check:
    forget = _metric(candidate, "forget_accuracy")
    return _check("forget_accuracy", forget, limit, f"forget accuracy is {_pct(forget)}, above the allowed "
                  f"{_pct(limit)}: the class is not forgotten")


def _forget_accuracy_over_test(parent: dict[str, Any], candidate: dict[str, Any], limit: float) -> Check:
    forget, test = _metric(candidate, "forget_accuracy"), _metric(candidate, "test_accuracy")
    over = forget - test
    return _check("forget_accuracy_over_test", over, limit,
                  f"forget accuracy {_pct(forget)} exceeds test accuracy {_pct(test)} by {_pts(over)}, more "
                  f"than the allowed {_pts(limit)}: the samples are still recognised as training data")


def _member_rate_gap(parent: dict[str, Any], candidate: dict[str, Any], limit: float) -> Check:
    gap = _metric(candidate, "mia.gap")
    return _check("member_rate_gap", gap, limit,
                  f"membership-inference gap is {gap:.3f} (forget member rate "
                  f"{_pct(_metric(candidate, 'mia.forget_member_rate'))} vs held-out "
                  f"{_pct(_metric(candidate, 'mia.holdout_member_rate'))}), above the allowed {limit:.3f}")


#: A scenario's checks by name (`Scenario.checks`): (parent metrics, candidate metrics, limit) -> Check.
#: Check C's limit is the threshold `<the scenario's section>.C_max` (`Thresholds.limit`).
CHECKS: dict[str, Callable[[dict[str, Any], dict[str, Any], float], Check]] = {
    "forget_accuracy": _forget_accuracy,
    "forget_accuracy_over_test": _forget_accuracy_over_test,
    "member_rate_gap": _member_rate_gap,
}


def decide(parent: dict[str, Any], candidate: dict[str, Any], scenario: str,
           thresholds: Thresholds | None = None, *,
           per_example: Mapping[str, Any] | None = None) -> GateDecision:
    """`pass` when the candidate meets every criterion of `scenario`, else `review` with reasons.

    `parent` and `candidate` hold `retain_accuracy`, `test_accuracy`, `forget_accuracy` (0..1)
    and `mia.gap` (subject scenario); a missing or non-finite metric fails its criterion.
    `per_example`: the per-example test's evidence (`per_example_evidence(...).evidence`), for a
    scenario judged per example: it then decides membership in place of the population attack
    (module docstring). The scenario's row names its checks and its thresholds section.
    """
    row = scenario_row(scenario)
    t = thresholds or load_thresholds()
    checks: list[Check] = []
    for split in ("test", "retain"):
        name, limit = f"{split}_accuracy_drop", t.limit(f"{split}_accuracy_drop")
        before, after = _metric(parent, f"{split}_accuracy"), _metric(candidate, f"{split}_accuracy")
        drop = before - after
        checks.append(_check(
            name, drop, limit,
            f"{split} accuracy dropped by {_pts(drop)} ({_pct(before)} -> {_pct(after)}), "
            f"more than the allowed {_pts(limit)}"))
    notes: list[str] = []
    requests: dict[str, dict[str, Any]] = {}
    membership_test = None
    if row.per_example and per_example is not None:
        membership_test = "per-example"
        check, notes, requests = _per_example_checks(per_example)
        checks.append(check)
        gap, gap_limit = _metric(candidate, "mia.gap"), t.limit("member_rate_gap", row.thresholds)
        if math.isfinite(gap) and gap > gap_limit + TOLERANCE:
            notes.append(f"the population attack's member-rate gap is {gap:.3f} (limit "
                         f"{gap_limit:.3f}); reported, not decisive: the per-example "
                         "test against the reference models decides")
    else:
        if row.per_example:
            membership_test = "population"
            notes.append(WEAK_ATTACK_NOTE)
        checks += [CHECKS[name](parent, candidate, t.limit(name, row.thresholds)) for name in row.checks]
    if candidate.get("parameters_changed") is False:
        checks.append(_check("parameters_unchanged", 1.0, 0.0,
                             "the candidate's parameters equal its parent's: nothing was dampened, so "
                             "nothing was provably forgotten (the samples may already look unseen)"))
    reasons = [c.reason for c in checks if not c.passed]
    return GateDecision("review" if reasons else "pass", reasons, checks, notes, membership_test, requests)
