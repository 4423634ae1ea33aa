"""The memorised scenario's goals (benchmarks/judge.py, benchmarks/remedy.py) from hand-made rows: a
judge that misses memorised persons, flags the retrained model beyond the non-member bound or lets the
original through fails its goals; a repair that leaves the candidate as it was fails the ladder's."""

from __future__ import annotations

import copy

from benchmarks.judge import judge_goals, judge_seed
from benchmarks.remedy import ladder_goals

KINDS = {"w0": "wrong_label", "w1": "wrong_label", "s0": "stamped"}


def _person(agreement: float, flagged: bool, outcome: str, trigger: float | None = None) -> dict:
    return {"agreement": agreement, "trigger": trigger, "flagged": flagged, "outcome": outcome,
            "statistic": 5.0 if flagged else 0.0, "p_value": 0.001 if flagged else 0.5}


def _kind_row(still: float, flagged: float, agreement: float, loss: float) -> dict:
    return {"still_flagged": still, "flagged_share": flagged, "memorised_agreement": agreement,
            "forget_loss": loss}


def _model(persons: dict, gate_refuses: bool, test: float, kind_rows: dict, seconds: float = 100.0) -> dict:
    return {"persons": persons, "gate_refuses": gate_refuses, "test_accuracy": test, "seconds": seconds,
            "non_member_rate": {"share": 0.01, "ci_high": 0.05}, **kind_rows}


def _seed(*, original_flags: bool = True, retrained_flags: bool = False, repaired_like_retrained: bool = True
          ) -> dict:
    original = _model({"w0": _person(0.9, original_flags, "still_flagged"),
                       "w1": _person(0.8, original_flags, "still_flagged"),
                       "s0": _person(0.9, original_flags, "still_flagged", trigger=0.6)}, True, 0.85,
                      {"wrong_label": _kind_row(1.0, 0.6, 0.85, 0.2),
                       "stamped": _kind_row(1.0, 0.5, 0.9, 0.2)})
    retrained = _model({"w0": _person(0.0, retrained_flags, "removed"),
                        "w1": _person(0.1, retrained_flags, "removed"),
                        "s0": _person(0.1, retrained_flags, "removed", trigger=0.05)}, retrained_flags, 0.85,
                       {"wrong_label": _kind_row(0.0, 0.01, 0.05, 4.0),
                        "stamped": _kind_row(0.0, 0.01, 0.1, 3.0)})
    repaired = copy.deepcopy(retrained if repaired_like_retrained else original)
    repaired["info"] = {"repair_s": 10.0, "recipe_share": 0.2}
    methods = {"original": original, "retrained": retrained, "repair_toy": repaired}
    return {"methods": methods, "judge": judge_seed(methods, KINDS)}


def test_a_judge_that_flags_the_memorised_and_clears_the_retrained_meets_every_goal():
    goals = judge_goals({"0": _seed(), "1": _seed()})
    assert goals["memorised_flagged_met"] and goals["retrained_within_bound_met"] and goals["gate_met"]
    assert goals["by_kind"]["wrong_label"] == {"memorised": 4, "flagged": 4, "share": 1.0, "met": True,
                                               "retrained_flagged": 0, "persons": 4}


def test_a_judge_that_misses_or_over_flags_fails_its_goals():
    missed = judge_goals({"0": _seed(original_flags=False)})
    assert not missed["memorised_flagged_met"] and missed["by_kind"]["stamped"]["share"] == 0.0
    over = judge_goals({"0": _seed(), "1": _seed(retrained_flags=True)})
    assert over["retrained_within_bound"] == {"0": True, "1": False}
    assert not over["retrained_within_bound_met"]
    assert not over["gate_met"]  # the retrained model refused on seed 1


def test_a_repair_that_changes_nothing_misses_the_ladder_goal_and_the_gate_still_refuses():
    summary = {"wrong_label": {}, "stamped": {}}
    good = ladder_goals({"0": _seed()}, summary)["by_kind"]["wrong_label"]["methods"]["repair_toy"]
    assert good["met"] and good["missed"] == []
    assert good["per_seed"]["0"]["repair_to_retrain"]["value"] == 0.1
    idle = ladder_goals({"0": _seed(repaired_like_retrained=False)}, summary)["by_kind"]["stamped"]
    toy = idle["methods"]["repair_toy"]
    assert not toy["met"] and idle["met_by"] == []
    missed = set(toy["missed"])
    assert {"still_flagged", "flagged_share", "memorised_agreement", "forget_loss_ratio"} <= missed
    assert toy["gate_refused_where_missed"]
