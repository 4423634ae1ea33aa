"""Contract tests over the scenario rows: every row is complete, and every reader finds what it names.

Parametrised over `SCENARIOS`: a new row is tested by these as it is added; nothing here pins the set.
"""

from __future__ import annotations

import argparse
import math

import pytest

from lethe.errors import ConfigError, EvaluationError, PipelineError
from lethe.evaluation.gate import CHECKS, decide
from lethe.evaluation.targets import TARGETS
from lethe.evaluation.thresholds import Thresholds
from lethe.forgetting.scenarios import (
    DEFAULT_SCENARIO,
    FORGET_INPUTS,
    SCENARIOS,
    infer_scenario,
    scenario,
)
from lethe.forgetting.spec import ForgetSpec

ROWS = list(SCENARIOS.values())
#: One value per forget-set argument, for rows that take it.
INPUTS = {"forget_ids": ["digits/train/0"], "forget_subjects": ["subject-00001"], "forget_class": 3}


@pytest.fixture(params=ROWS, ids=lambda row: row.name)
def row(request):
    return request.param


def test_every_row_is_complete(row) -> None:
    assert SCENARIOS[row.name] is row and scenario(row.name) is row
    assert row.summary and set(row.takes) <= set(FORGET_INPUTS) and row.takes
    assert row.target in TARGETS
    assert row.checks and all(name in CHECKS for name in row.checks)
    assert isinstance(row.repair_rungs, tuple)
    # Every limit the row's checks and target read is in thresholds.yaml, under the row's section.
    limits = Thresholds()
    for name in (*row.checks, TARGETS[row.target].gate_check):
        assert math.isfinite(limits.limit(name, row.thresholds))


def test_every_row_takes_its_inputs_and_refuses_the_others(row) -> None:
    for name in row.takes:
        row.refuse_inputs([name])  # accepted
        assert name in infer_scenario(None, **{name: INPUTS[name]}).takes  # a row takes it alone
    for name in set(FORGET_INPUTS) - set(row.takes):
        with pytest.raises(PipelineError, match=f"the {row.name} scenario"):
            row.refuse_inputs([row.takes[0], name], error=PipelineError)
    with pytest.raises(ConfigError):
        row.refuse_inputs([])


def test_an_explicit_scenario_wins_and_nothing_given_is_the_default(row) -> None:
    assert infer_scenario(row.name) is row
    assert infer_scenario(None) is SCENARIOS[DEFAULT_SCENARIO]


def test_the_gate_runs_every_check_of_the_row_and_passes_a_perfect_candidate(row) -> None:
    parent = {"retain_accuracy": 0.99, "test_accuracy": 0.95, "forget_accuracy": 0.99,
              "mia": {"gap": 0.0, "forget_member_rate": 0.5, "holdout_member_rate": 0.5}}
    forgotten = {**parent, "forget_accuracy": 0.0}
    decision = decide(parent, forgotten, row.name)
    assert decision.passed, decision.reasons
    assert {c.name for c in decision.checks} >= set(row.checks)
    assert all(c.limit == Thresholds().limit(c.name, row.thresholds) for c in decision.checks
               if c.name in row.checks)


def test_the_forget_spec_records_every_row_and_refuses_unknown_ones(row, tmp_path) -> None:
    spec = ForgetSpec(scenario=row.name, dataset="digits", forget_class=3 if row.forgets_class else None,
                      sample_ids=[] if row.forgets_class else ["digits/train/0"])
    spec.save(tmp_path)
    assert ForgetSpec.load(tmp_path) == spec
    (tmp_path / "forget.json").write_text((tmp_path / "forget.json").read_text()
                                          .replace(f'"{row.name}"', '"no-such-scenario"'))
    with pytest.raises(PipelineError, match="field scenario: .*unknown scenario"):
        ForgetSpec.load(tmp_path)


def test_unknown_scenarios_are_refused_in_one_line() -> None:
    from lethe.evaluation import evaluate_candidate

    with pytest.raises(ConfigError, match="unknown scenario 'random'; expected one of"):
        scenario("random")
    with pytest.raises(EvaluationError, match="unknown scenario"):
        evaluate_candidate(None, None, retain=[], forget=[], test=None, scenario="random", out_dir=".")


def test_the_cli_offers_the_rows_and_describes_each() -> None:
    from lethe.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    option = next(a for a in sub.choices["evaluate"]._actions if "--scenario" in a.option_strings)
    assert tuple(option.choices) == tuple(SCENARIOS)
    assert all(row.summary in " ".join(option.help.split()) for row in ROWS)


def test_a_new_scenario_is_one_row(monkeypatch, digits_convnet, digits_train, digits_test) -> None:
    """"Everything from the data source of these samples", by per-sample metadata: one row, read by the
    forget spec, the CLI, the gate and the α search's target (the data's `source` column is the data's)."""
    from lethe.cli import build_parser
    from lethe.data import ForgetSplit
    from lethe.forgetting.resolved import ResolvedForgetSet
    from lethe.forgetting.scenarios import Scenario
    from lethe.steps.unlearn import make_target

    def same_source(train, *, ids, subjects, subjects_map, forget_class) -> ForgetSplit:
        sources = {train.metadata_column("source")[i] for i in train.indices_of(list(ids)).tolist()}
        mask = [source in sources for source in train.metadata_column("source")]
        return ForgetSplit(train.subset([i for i, m in enumerate(mask) if m]),
                           train.subset([i for i, m in enumerate(mask) if not m]))

    row = Scenario(name="source", summary="every sample of the named samples' data source",
                   takes=("forget_ids",), forgets_class=False, target="member_rate_gap",
                   checks=("forget_accuracy_over_test", "member_rate_gap"), thresholds="subject",
                   per_example=True, searches_cutoff=False, alpha_at_most_assd=True, resolve=same_source)
    monkeypatch.setitem(SCENARIOS, "source", row)

    train = digits_train.with_metadata({"source": [f"camera-{i % 7}" for i in range(len(digits_train))]})
    split = row.resolve(train, ids=["digits/train/3"], subjects=(), subjects_map=None, forget_class=None)
    assert set(split.forget.metadata_column("source")) == {"camera-3"}
    assert len(split.forget) + len(split.retain) == len(train)
    spec = ForgetSpec(scenario="source", dataset="digits", sample_ids=list(split.forget.ids))
    assert ForgetSpec.from_bytes(spec.to_bytes()) == spec
    assert decide({"retain_accuracy": 0.9, "test_accuracy": 0.9, "mia": {"gap": 0.0}},
                  {"retain_accuracy": 0.9, "test_accuracy": 0.9, "forget_accuracy": 0.9,
                   "mia": {"gap": 0.0}}, "source").passed
    model, _ = digits_convnet
    forget_set = ResolvedForgetSet("digits", "source", train, digits_test, split, None)
    assert make_target(model, forget_set, device="cpu").limit == Thresholds().subject_member_rate_gap_max
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    option = next(a for a in sub.choices["evaluate"]._actions if "--scenario" in a.option_strings)
    assert "source" in option.choices and row.summary in " ".join(option.help.split())
