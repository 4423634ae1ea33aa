"""The judge of a person on memorised subjects (issue 23's goals), from the product's own evidence.

Per person and model: the person statistic, p-value, flag at 1% FPR over persons and outcome that
`per_example_evidence` gives (on `ReferenceSet.outputs`), beside the person's agreement with its planted
labels and pattern-trigger rate. A person is "measurably memorised" when the original's agreement or
trigger rate is above the retrained model's by at least `MEMORISED_GAP`. Goals, over every seed:
- the judge flags at least `FLAGGED_MIN` of the measurably memorised persons of each kind on the original;
- it flags no more of the retrained model's persons than the non-member rate's upper bound (Wilson, over
  the null's reported persons) allows, on each seed;
- the gate (its per-person check) refuses the original and passes the retrained model on each seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from lethe.data.planted import KINDS, PlantedSubjects

MEMORISED_GAP = 0.05
FLAGGED_MIN = 0.9


def person_rows(requests: Mapping[str, Any], planted: PlantedSubjects, rows: Mapping[str, torch.Tensor],
                triggers: Mapping[str, torch.Tensor], predicted: torch.Tensor, labels: torch.Tensor,
                triggered: torch.Tensor | None, fpr: str) -> dict[str, dict[str, Any]]:
    """Per subject: its kind, the candidate's person statistic, p-value, flag at `fpr` and outcome
    (None where no person was judged), agreement and trigger rate."""
    out = {}
    for subject, kind in planted.kinds.items():
        entry = requests[subject]
        person = entry.get("person") or {}
        flagged = (person.get("flagged") or {}).get(fpr) or {}
        mine = rows[subject]
        trigger = (float(triggered[triggers[subject]].double().mean())
                   if triggered is not None and subject in triggers else None)
        out[subject] = {"kind": kind, "statistic": (person.get("statistic") or {}).get("candidate"),
                        "p_value": (person.get("p_value") or {}).get("candidate"),
                        "flagged": bool(flagged.get("candidate", False)), "outcome": entry["outcome"],
                        "agreement": float((predicted[mine] == labels[mine]).double().mean()),
                        "trigger": trigger}
    return out


def _memorised(original: Mapping[str, Any], retrained: Mapping[str, Any]) -> bool:
    gaps = [original["agreement"] - retrained["agreement"]]
    if original["trigger"] is not None and retrained["trigger"] is not None:
        gaps.append(original["trigger"] - retrained["trigger"])
    return max(gaps) >= MEMORISED_GAP - 1e-9


def judge_seed(methods: Mapping[str, Mapping[str, Any]], kinds: Mapping[str, str]) -> dict[str, Any]:
    """One seed's judge figures: per kind, the measurably memorised persons and how many the original is
    flagged on; the retrained model's flagged persons against the non-member bound; the gate on both."""
    original, retrained = methods["original"]["persons"], methods["retrained"]["persons"]
    by_kind = {}
    for kind in KINDS:
        persons = [s for s, k in kinds.items() if k == kind]
        if not persons:
            continue
        memorised = [s for s in persons if _memorised(original[s], retrained[s])]
        flagged = sum(original[s]["flagged"] for s in memorised)
        by_kind[kind] = {"persons": len(persons), "memorised": len(memorised),
                         "memorised_flagged_on_original": flagged,
                         "memorised_flagged_share": flagged / len(memorised) if memorised else None,
                         "flagged_on_retrained": sum(retrained[s]["flagged"] for s in persons)}
    bound = (methods["retrained"].get("non_member_rate") or {}).get("ci_high")
    share = sum(p["flagged"] for p in retrained.values()) / len(retrained)
    return {"by_kind": by_kind, "persons": len(retrained), "retrained_flagged_share": share,
            "non_member_rate": methods["retrained"].get("non_member_rate"),
            "retrained_within_non_member_bound": bound is not None and share <= bound,
            "judge_refused": methods["original"].get("judge_refused"),
            "gate": {"original_refused": bool(methods["original"]["gate_refuses"]),
                     "retrained_passed": not methods["retrained"]["gate_refuses"]}}


def judge_goals(per_seed: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The three goals over every seed (persons pooled over seeds for the flagged share)."""
    judged = [r["judge"] for r in per_seed.values()]
    kinds: dict[str, Any] = {}
    for kind in KINDS:
        rows = [j["by_kind"][kind] for j in judged if kind in j["by_kind"]]
        if not rows:
            continue
        memorised = sum(r["memorised"] for r in rows)
        flagged = sum(r["memorised_flagged_on_original"] for r in rows)
        share = flagged / memorised if memorised else None
        kinds[kind] = {"memorised": memorised, "flagged": flagged, "share": share,
                       "met": share is not None and share >= FLAGGED_MIN,
                       "retrained_flagged": sum(r["flagged_on_retrained"] for r in rows),
                       "persons": sum(r["persons"] for r in rows)}
    seeds = list(per_seed)
    return {"flagged_min": FLAGGED_MIN, "memorised_gap": MEMORISED_GAP, "seeds": len(seeds), "by_kind": kinds,
            "memorised_flagged_met": all(k["met"] for k in kinds.values()),
            "retrained_within_bound": (within := {s: per_seed[s]["judge"]["retrained_within_non_member_bound"]
                                                  for s in seeds}),
            "retrained_within_bound_met": all(within.values()),
            "gate": {s: per_seed[s]["judge"]["gate"] for s in seeds},
            "gate_met": all(g["original_refused"] and g["retrained_passed"]
                            for g in (per_seed[s]["judge"]["gate"] for s in seeds))}
