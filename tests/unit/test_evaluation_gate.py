"""The gate: a pure function from (parent, candidate, scenario, thresholds) to pass/review."""

from __future__ import annotations

import pytest

from lethe.errors import ConfigError
from lethe.evaluation import Thresholds, decide, load_thresholds
from lethe.evaluation.thresholds import default_values


def metrics(retain: float, test: float, forget: float, gap: float = 0.0) -> dict:
    return {"retain_accuracy": retain, "test_accuracy": test, "forget_accuracy": forget,
            "mia": {"gap": gap, "forget_member_rate": 0.5 + gap, "holdout_member_rate": 0.5}}


PARENT = metrics(retain=0.99, test=0.95, forget=0.99)


def test_thresholds_yaml_is_the_one_source_of_the_thresholds() -> None:
    from importlib import resources

    import yaml

    tree = yaml.safe_load(resources.files("lethe.evaluation").joinpath("thresholds.yaml").read_text())
    t = load_thresholds()
    assert t == Thresholds() and t.to_dict() == default_values()  # every leaf is a field, its default
    leaves = [("", key, value) for key, value in tree.items() if not isinstance(value, dict)]
    leaves += [(section, key, value) for section, block in tree.items() if isinstance(block, dict)
               for key, value in block.items()]
    assert len(leaves) == len(default_values())
    for section, key, value in leaves:  # check C of section S: `S.C_max`, found by the check's name
        assert key.endswith("_max") and t.limit(key.removesuffix("_max"), section) == float(value)
    with pytest.raises(ConfigError, match="no gate threshold class.no_such_check_max"):
        t.limit("no_such_check", "class")


def test_class_forgotten_at_small_cost_passes() -> None:
    decision = decide(PARENT, metrics(retain=0.98, test=0.94, forget=0.01), "class")
    assert decision.decision == "pass" and decision.reasons == []
    names = {c.name for c in decision.checks}
    assert names == {"test_accuracy_drop", "retain_accuracy_drop", "forget_accuracy"}


def test_every_failed_criterion_is_spelled_out_with_numbers() -> None:
    decision = decide(PARENT, metrics(retain=0.90, test=0.80, forget=0.30), "class")
    assert decision.decision == "review"
    assert len(decision.reasons) == 3
    text = " | ".join(decision.reasons)
    assert "test accuracy dropped by 15.00 points (95.00% -> 80.00%)" in text
    assert "retain accuracy dropped by 9.00 points" in text
    assert "forget accuracy is 30.00%, above the allowed 5.00%" in text


def test_limits_are_inclusive_and_overridable(tmp_path) -> None:
    at_limit = metrics(retain=0.97, test=0.93, forget=0.05)
    assert decide(PARENT, at_limit, "class").passed
    strict = tmp_path / "strict.yaml"
    strict.write_text("test_accuracy_drop_max: 0.01\nclass:\n  forget_accuracy_max: 0.0\n")
    decision = decide(PARENT, at_limit, "class", load_thresholds(strict))
    assert not decision.passed and len(decision.reasons) == 2


def test_subject_scenario_checks_forget_accuracy_against_test_and_the_mia_gap() -> None:
    ok = metrics(retain=0.985, test=0.945, forget=0.95, gap=0.03)
    assert decide(PARENT, ok, "subject").passed
    remembered = metrics(retain=0.985, test=0.945, forget=1.0, gap=0.20)
    decision = decide(PARENT, remembered, "subject")
    failed = [c.name for c in decision.checks if not c.passed]
    assert failed == ["forget_accuracy_over_test", "member_rate_gap"]
    assert "membership-inference gap is 0.200" in decision.reasons[1]


def test_missing_or_nan_metrics_never_pass() -> None:
    candidate = metrics(retain=0.99, test=float("nan"), forget=0.0)
    decision = decide(PARENT, candidate, "class")
    assert not decision.passed and "could not be measured" in decision.reasons[0]
    no_mia = {"retain_accuracy": 0.99, "test_accuracy": 0.95, "forget_accuracy": 0.9}
    assert "member rate gap could not be measured" in decide(PARENT, no_mia, "subject").reasons[-1]


def test_bad_scenario_and_bad_threshold_files_are_config_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown scenario"):
        decide(PARENT, PARENT, "random")
    bad = tmp_path / "bad.yaml"
    bad.write_text("test_acuracy_drop_max: 0.1\n")
    with pytest.raises(ConfigError, match="unknown gate threshold"):
        load_thresholds(bad)
    bad.write_text("test_accuracy_drop_max: lots\n")
    with pytest.raises(ConfigError, match="numbers"):
        load_thresholds(bad)


def test_an_unchanged_candidate_goes_to_review() -> None:
    from lethe.evaluation import decide

    parent = {"retain_accuracy": 0.95, "test_accuracy": 0.90, "forget_accuracy": 0.90,
              "mia": {"gap": 0.0, "forget_member_rate": 0.5, "holdout_member_rate": 0.5}}
    unchanged = {**parent, "parameters_changed": False}
    decision = decide(parent, unchanged, "subject")
    assert decision.decision == "review"
    assert any("nothing was dampened" in reason for reason in decision.reasons)
    assert decide(parent, {**parent, "parameters_changed": True}, "subject").decision == "pass"
