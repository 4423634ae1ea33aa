"""The ladder's policy (lethe.evaluation.ladder): its file, its one-line refusals, and the decision between
rungs that the CLI, the steps and the pipelines' conditions share. No model: gates are written by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lethe.errors import ConfigError, LetheError
from lethe.evaluation.ladder import default_policy, load_ladder, next_rung, refusals, repair_method_for
from lethe.forgetting.scenarios import SCENARIOS, scenario


def _gate(*failing: str, value: float = 1.0, requests: dict | None = None) -> dict:
    checks = [{"name": name, "value": value, "limit": 0.0, "passed": False, "reason": f"{name} failed"}
              for name in failing]
    if "test_accuracy_drop" not in failing:
        checks.append({"name": "test_accuracy_drop", "value": 0.0, "limit": 0.02, "passed": True,
                       "reason": ""})
    reasons = [check["reason"] for check in checks if not check["passed"]]
    return {"decision": "review" if failing else "pass", "reasons": reasons, "checks": checks,
            "requests": requests or {}}


def test_the_default_policy_is_dampen_then_repair_then_review():
    policy = default_policy()
    assert policy.rungs == ("dampen", "repair") and not policy.retrain
    assert policy.repair_method == "auto" and 0 < policy.max_share <= 0.2
    assert load_ladder(None) == load_ladder("") == policy
    assert load_ladder(policy.to_inline()) == policy  # what a pipeline parameter carries reads back


def test_overrides_key_by_key_from_inline_yaml_and_a_file(tmp_path: Path):
    assert load_ladder("{retrain: auto}").rungs == ("dampen", "repair", "retrain")
    assert load_ladder("rungs: [dampen]").rungs == ("dampen",)
    path = tmp_path / "ladder.yaml"
    path.write_text("repair:\n  method: retain_finetune\n  share: 0.05\n")
    policy = load_ladder(path)
    assert (policy.repair_method, policy.repair_share, policy.max_share) == ("retain_finetune", 0.05, 0.2)
    assert load_ladder(f"file://{path}") == load_ladder(str(path)) == policy
    assert policy.share_for(0.1) == 0.05 and load_ladder("").share_for(0.5) == 0.2  # never above the cap


@pytest.mark.parametrize(("text", "words"), [
    ("[dampen, repair]", "must be a mapping"),
    ("- dampen\n- repair\n", "must be a mapping"),
    ("rungs: [dampen, cook]", "unknown rung 'cook'"),
    ("rungs: [repair]", "the first rung is dampen"),
    ("rungs: [dampen, retrain, repair]", "in the order"),
    ("rungs: [dampen, repair, repair]", "once each"),
    ("repair: {share: -0.1}", "at least 0"),
    ("repair: {share: .nan}", "finite number"),
    ("repair: {share: 0.5}", "above repair.max_share"),
    ("repair: {max_share: 0}", "in (0, 1]"),
    ("repair: [retain_finetune]", "repair must be a mapping"),
    ("repair: {method: nope}", "unknown repair method 'nope'"),
    ("repair: {budget: 3}", "unknown repair key(s) budget"),
    ("retrain: maybe", "review or auto"),
    ("{rungs: [dampen, repair, retrain], retrain: review}", "say one or the other"),
    ("colour: blue", "unknown key(s) colour"),
    ("rungs: [dampen\n", "not valid YAML"),
])
def test_a_wrong_policy_is_refused_in_one_line(text: str, words: str):
    with pytest.raises(LetheError) as caught:
        load_ladder(text)
    message = str(caught.value)
    assert words in message and "\n" not in message


def test_a_missing_file_is_refused_in_one_line(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read the ladder policy"):
        load_ladder(tmp_path / "absent.yaml")


def test_refusals_name_what_the_gate_refused():
    assert refusals(_gate()) == ()
    assert refusals(_gate("test_accuracy_drop", "retain_accuracy_drop")) == ("accuracy_drop",)
    assert refusals(_gate("per_example_still_flagged")) == ("still_flagged",)
    assert refusals(_gate("forget_accuracy")) == ("not_forgotten",)
    assert refusals(_gate("per_example_still_flagged", value=math.nan)) == ("unjudged",)


def test_next_rung_climbs_only_what_can_help():
    policy, cls, subject = default_policy(), scenario("class"), scenario("subject")
    assert next_rung(policy, _gate(), done="dampen", row=cls) == "register"  # a pass registers
    assert next_rung(policy, _gate("test_accuracy_drop"), done="dampen", row=cls) == "repair"
    assert next_rung(policy, _gate("test_accuracy_drop"), done="repair", row=cls) == "register"  # review
    # No repair rung of the subject row addresses a person still flagged: review, or retrain when allowed.
    flagged = _gate("per_example_still_flagged", requests={"r1": {"outcome": "still_flagged"}})
    if repair_method_for(policy, subject, flagged) is None:
        assert next_rung(policy, flagged, done="dampen", row=subject) == "register"
    retrain = load_ladder("{retrain: auto}")
    assert next_rung(retrain, flagged, done="repair", row=subject) == "retrain"
    assert next_rung(retrain, _gate(), done="repair", row=subject) == "register"
    # A verdict the evidence cannot reach (reference models that cannot judge a person) climbs nothing.
    unjudged = _gate("per_example_still_flagged", value=math.nan)
    assert next_rung(retrain, unjudged, done="dampen", row=subject) == "register"
    # Dampening alone: nothing to climb.
    assert next_rung(load_ladder("rungs: [dampen]"), _gate("test_accuracy_drop"), done="dampen",
                     row=cls) == "register"


def test_a_named_method_is_used_for_any_refusal_but_only_where_the_scenario_allows_it():
    named = load_ladder("repair: {method: retain_finetune}")
    flagged = _gate("per_example_still_flagged")
    assert next_rung(named, flagged, done="dampen", row=scenario("subject")) == "repair"
    from dataclasses import replace

    with pytest.raises(ConfigError, match="allows the repair rung"):
        repair_method_for(named, replace(scenario("subject"), repair_rungs=()), flagged)


@pytest.mark.parametrize("row", list(SCENARIOS.values()), ids=lambda row: row.name)
def test_every_scenario_names_registered_repair_rungs(row):
    from lethe.unlearning.repair import get_repair

    for name in row.repair_rungs:
        assert get_repair(name).name == name


def test_certificates_and_descriptions_name_every_rung():
    from lethe.ledger.certificates import removed_by, request_rungs
    from lethe.registry.description import ladder_line

    ladder = [{"rung": "dampen", "method": "lfssd", "decision": "review", "seconds": 2.0,
               "requests": {"r1": "still_flagged", "r2": "not_memorised"}},
              {"rung": "repair", "method": "retain_finetune", "share_of_recipe": 0.1, "seconds": 1.0,
               "decision": "pass", "requests": {"r1": "removed", "r2": "not_memorised"}}]
    first = request_rungs(ladder, "r1")
    assert [r["outcome"] for r in first] == ["still_flagged", "removed"] and "requests" not in first[0]
    assert removed_by(first) == "repair"
    assert removed_by(request_rungs(ladder, "r2")) is None  # never flagged: nothing was removed
    line = ladder_line(ladder)
    assert "dampen (lfssd" in line and "repair (retain_finetune, 10% of the recipe" in line
    assert line.index("dampen") < line.index("repair")
