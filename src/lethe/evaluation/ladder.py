"""The escalation ladder's policy: which rungs a run may climb when the gate refuses, and their budgets.

dampen → evaluate → (refused for a reason a repair addresses) repair → evaluate → (still refused, and the
policy allows it) retrain → evaluate → register; whatever is still refused goes to review with every rung's
evidence. `ladder.yaml` (packaged beside this module, next to the gate's `thresholds.yaml`) is the default
policy; `load_ladder(source)` is the one reader (a file, inline YAML/JSON or a storage URI, as thresholds),
and every value is checked there: a bad one is a one-line `ConfigError`, before anything runs.

`next_rung(policy, gate, done=..., scenario=...)` is the one decision the CLI, the steps and the
pipelines' conditions share: given the gate's verdict on the rung just climbed, `register` (it passed, or
nothing left can help), `repair` or `retrain`. The pooled result never turns a request's `still_flagged`
into a pass: the gate decides, the ladder only chooses what to try next.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from lethe.errors import ConfigError, StorageError
from lethe.forgetting.scenarios import Scenario
from lethe.storage import get_bytes
from lethe.storage.uris import local_path

DEFAULTS_FILE = "ladder.yaml"
#: The rungs, in the only order they may be climbed.
RUNGS: tuple[str, ...] = ("dampen", "repair", "retrain")
#: What a run does after a rung: register the candidate (a pass, or nothing left to try), or climb.
NextRung = Literal["register", "repair", "retrain"]
AUTO = "auto"
RETRAIN_CHOICES = ("review", "auto")
_KEYS = {"rungs", "repair", "retrain"}
_REPAIR_KEYS = {"method", "share", "max_share"}
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

#: The gate's checks by the refusal they stand for (a repair method's `addresses` names refusals).
REFUSAL_OF_CHECK = {
    "test_accuracy_drop": "accuracy_drop",
    "retain_accuracy_drop": "accuracy_drop",
    "per_example_still_flagged": "still_flagged",
    "member_rate_gap": "still_flagged",
    "forget_accuracy_over_test": "still_flagged",
    "forget_accuracy": "not_forgotten",
    "parameters_unchanged": "unchanged",
}


@dataclass(frozen=True)
class LadderPolicy:
    """The rungs a run may climb (`dampen` first) and the repair rung's method and budget."""

    rungs: tuple[str, ...]
    repair_method: str  # `auto` or a registered repair method
    repair_share: float  # share of the root recipe's sample-steps; 0: the method's default
    max_share: float  # no repair may take more

    @property
    def retrain(self) -> bool:
        return "retrain" in self.rungs

    def to_dict(self) -> dict[str, Any]:
        repair = {"method": self.repair_method, "share": self.repair_share, "max_share": self.max_share}
        return {"rungs": list(self.rungs), "repair": repair,
                "retrain": "auto" if self.retrain else "review"}

    def to_inline(self) -> str:
        """One line of JSON that `load_ladder` reads back (a pipeline parameter)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def share_for(self, default_share: float) -> float:
        """The budget of a repair whose method's own default is `default_share`: the policy's share, else
        the method's, never above `max_share`."""
        return min(self.repair_share or default_share, self.max_share)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"ladder policy: {what} must be a finite number, not {value!r}")
    return float(value)


def _rungs(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(rung, str) for rung in value):
        raise ConfigError(f"ladder policy: rungs must be a list of names from {', '.join(RUNGS)}")
    unknown = [rung for rung in value if rung not in RUNGS]
    if unknown:
        raise ConfigError(f"ladder policy: unknown rung {unknown[0]!r}; expected {', '.join(RUNGS)}")
    if not value or value[0] != "dampen":
        raise ConfigError("ladder policy: the first rung is dampen (every run dampens first)")
    if len(set(value)) != len(value) or value != sorted(value, key=RUNGS.index):
        raise ConfigError(f"ladder policy: rungs are climbed once each, in the order {' → '.join(RUNGS)}")
    return list(value)


def _check(raw: Mapping[str, Any]) -> LadderPolicy:
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"ladder policy: unknown key(s) {', '.join(map(str, unknown))}; "
                          f"expected {', '.join(sorted(_KEYS))}")
    repair = raw.get("repair") or {}
    if not isinstance(repair, Mapping):
        raise ConfigError("ladder policy: repair must be a mapping (method, share, max_share)")
    unknown = sorted(set(repair) - _REPAIR_KEYS)
    if unknown:
        raise ConfigError(f"ladder policy: unknown repair key(s) {', '.join(map(str, unknown))}; "
                          f"expected {', '.join(sorted(_REPAIR_KEYS))}")
    rungs = _rungs(raw.get("rungs", list(RUNGS[:2])))
    retrain = raw.get("retrain", "review")
    if retrain not in RETRAIN_CHOICES:
        raise ConfigError(f"ladder policy: retrain must be review or auto, not {retrain!r}")
    if retrain == "auto" and "retrain" not in rungs:
        rungs.append("retrain")
    elif retrain == "review" and "retrain" in rungs and "retrain" in raw:
        raise ConfigError("ladder policy: rungs list retrain but retrain is review; say one or the other")
    method = repair.get("method", AUTO)
    if not isinstance(method, str) or not method.strip():
        raise ConfigError(f"ladder policy: repair.method must be auto or a repair method, not {method!r}")
    share = _number(repair.get("share", 0), "repair.share")
    max_share = _number(repair.get("max_share", 0.2), "repair.max_share")
    if share < 0:
        raise ConfigError(f"ladder policy: repair.share is a budget, at least 0 (0: the method's), "
                          f"not {share:g}")
    if not 0 < max_share <= 1:
        raise ConfigError(f"ladder policy: repair.max_share must be in (0, 1] of the recipe, "
                          f"not {max_share:g}")
    if share > max_share:
        raise ConfigError(f"ladder policy: repair.share {share:g} is above repair.max_share {max_share:g}")
    if method != AUTO:
        from lethe.unlearning.repair import get_repair  # torch: only when a method is named

        get_repair(method)  # an unknown name is one line naming the registered ones
    return LadderPolicy(tuple(rungs), method, share, max_share)


@cache
def _defaults() -> dict[str, Any]:
    return yaml.safe_load(resources.files("lethe.evaluation").joinpath(DEFAULTS_FILE).read_text())


def default_policy() -> LadderPolicy:
    return _check(_defaults())


def parse_yaml(text: str, *, source: str) -> LadderPolicy:
    """The defaults, overridden by the top-level keys of the YAML (or JSON) mapping in `text`."""
    try:
        override = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"ladder policy in {source} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if override is None:
        override = {}
    if not isinstance(override, dict):
        raise ConfigError(f"ladder policy in {source} must be a mapping (rungs, repair, retrain)")
    merged = {**_defaults(), **override}
    if isinstance(override.get("repair"), Mapping):
        merged["repair"] = {**_defaults()["repair"], **override["repair"]}
    if "rungs" in override and "retrain" not in override:
        merged.pop("retrain")  # the rungs given say whether to retrain
    return _check(merged)


def _read_file(path: str | Path) -> LadderPolicy:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the ladder policy from {path}: {exc.strerror or exc}") from exc
    return parse_yaml(text, source=str(path))


def load_ladder(source: str | Path | LadderPolicy | None = None) -> LadderPolicy:
    """The ladder policy: the defaults (None or ""), a `LadderPolicy` as it is, a YAML file (a path or
    `file://`), a storage URI (checked against its sidecar), or inline YAML/JSON (`{retrain: auto}`)
    overriding the defaults key by key."""
    if isinstance(source, LadderPolicy):
        return source
    if source is None or not str(source).strip():
        return default_policy()
    if isinstance(source, Path):
        return _read_file(source)
    text = str(source).strip()
    if text.startswith("file://"):
        return _read_file(local_path(text))
    if _URI.match(text):
        try:
            content = get_bytes(text)
        except StorageError as exc:
            raise ConfigError(f"cannot read the ladder policy from {text}: {exc}") from exc
        return parse_yaml(content.decode("utf-8", errors="replace"), source=text)
    if text.startswith(("{", "[")) or "\n" in text or (":" in text and not Path(text).exists()):
        return parse_yaml(text, source="inline ladder policy")
    return _read_file(text)


def refusals(gate: Mapping[str, Any]) -> tuple[str, ...]:
    """The refusals of a gate's verdict (`GateDecision.to_dict()`), by kind: `accuracy_drop`,
    `still_flagged`, `not_forgotten`, `unchanged`, or `unjudged` (a check that could not be measured)."""
    found: list[str] = []
    for check in gate.get("checks") or []:
        if check.get("passed"):
            continue
        value = check.get("value")
        measurable = isinstance(value, (int, float)) and math.isfinite(value)
        kind = REFUSAL_OF_CHECK.get(str(check.get("name")), "other") if measurable else "unjudged"
        if kind not in found:
            found.append(kind)
    return tuple(found)


def repair_method_for(policy: LadderPolicy, row: Scenario, gate: Mapping[str, Any]) -> str | None:
    """The repair method the policy climbs to for this refusal, or None when no rung of the scenario
    addresses it. A named method must be one of the scenario's `repair_rungs`; `auto` takes the first of
    them whose `addresses` meets the refusals."""
    from lethe.unlearning.repair import get_repair

    if policy.repair_method != AUTO:
        if policy.repair_method not in row.repair_rungs:
            allowed = ", ".join(row.repair_rungs) or "none"
            raise ConfigError(f"the {row.name} scenario allows the repair rung(s) {allowed}, "
                              f"not {policy.repair_method}")
        return policy.repair_method
    wanted = set(refusals(gate))
    for name in row.repair_rungs:
        if wanted & set(get_repair(name).addresses):
            return name
    return None


def next_rung(policy: LadderPolicy, gate: Mapping[str, Any], *, done: str, row: Scenario) -> NextRung:
    """What follows rung `done` given the gate's verdict on its candidate: `register` when it passed or
    nothing left can help (the version then waits for review), else the next rung the policy allows."""
    if done not in RUNGS:
        raise ConfigError(f"unknown rung {done!r}; expected {', '.join(RUNGS)}")
    if gate.get("decision") == "pass":
        return "register"
    kinds = refusals(gate)
    if "unjudged" in kinds:  # the evidence cannot judge a person: no rung makes that measurable
        return "register"
    for rung in (r for r in policy.rungs if RUNGS.index(r) > RUNGS.index(done)):
        if rung == "repair" and repair_method_for(policy, row, gate) is not None:
            return "repair"
        if rung == "retrain":
            return "retrain"
    return "register"


__all__ = ["RUNGS", "LadderPolicy", "default_policy", "load_ladder", "next_rung", "refusals",
           "repair_method_for"]
