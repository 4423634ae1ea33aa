"""The ladder's steps on digits: a class forget that dampening over-does (α=1.5 on every layer costs the rest
several points, so the gate refuses it for an accuracy drop) is repaired by a retain fine-tune within its
budget and passes; the components' python_funcs, `lethe remedy`, the register step's tags and outcome.

One dampened candidate and its evaluation are shared by the module.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.pipelines.helpers import lethe_home, register_champion

pytestmark = pytest.mark.slow  # a digits model dampened, repaired and evaluated, one MLflow registration
FORGET_CLASS = 3
# Per-sample importances (the product's default); batched ones at this α wreck the model past any repair.
DAMPEN = {"forget_class": FORGET_CLASS, "alpha": 1.5, "cutoff": "all"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, digits_convnet_dir: Path):
    with lethe_home(tmp_path_factory.mktemp("ladder") / "lethe") as root:
        version = register_champion(digits_convnet_dir)
        yield root, version


@pytest.fixture(scope="module")
def spec(home) -> Path:
    from lethe.forgetting.spec import ForgetSpec

    root, version = home
    return ForgetSpec(scenario="class", dataset="digits", forget_class=FORGET_CLASS,
                      parent={"name": "", "version": version}).save(root / "forget")


@pytest.fixture(scope="module")
def dampened(home, digits_convnet_dir: Path) -> dict:
    from lethe.steps.evaluate import evaluate
    from lethe.steps.unlearn import unlearn

    root, _ = home
    candidate = root / "dampened"
    unlearn(digits_convnet_dir, out_dir=candidate, device="cpu", progress=False, **DAMPEN)
    judged = evaluate(candidate, digits_convnet_dir, forget_class=FORGET_CLASS,
                      out_dir=root / "dampened-evaluation", device="cpu", progress=False)
    return {"dir": candidate, "evaluation": root / "dampened-evaluation", "result": judged}


def _artifact(kind: type, path: Path):
    return kind(name=path.name, uri=str(path), metadata={})


def test_dampening_is_refused_for_the_rest_and_the_ladder_says_repair(dampened, spec):
    from kfp.dsl import Artifact

    from components.ladder import climb
    from lethe.evaluation.ladder import refusals

    gate = dampened["result"].gate
    assert gate["decision"] == "review" and refusals(gate) == ("accuracy_drop",)
    assert dampened["result"].candidate["forget_accuracy"] <= 0.05  # the class itself is gone
    after = climb.python_func(evaluation=_artifact(Artifact, dampened["evaluation"]),
                              forget=_artifact(Artifact, spec), done="dampen", ladder="")
    assert after == "repair"
    assert climb.python_func(evaluation=_artifact(Artifact, dampened["evaluation"]),
                             forget=_artifact(Artifact, spec), done="dampen",
                             ladder="rungs: [dampen]") == "register"


@pytest.fixture(scope="module")
def repaired(home, dampened, spec, digits_convnet_dir: Path) -> dict:
    from kfp.dsl import Artifact, Model

    from components.ladder import repair
    from lethe.steps.evaluate import evaluate

    root, _ = home
    out = _artifact(Model, root / "repaired")
    method = repair.python_func(candidate=_artifact(Model, dampened["dir"]),
                                parent=_artifact(Model, digits_convnet_dir), forget=_artifact(Artifact, spec),
                                evaluation=_artifact(Artifact, dampened["evaluation"]), dataset="", ladder="",
                                repaired=out)
    judged = evaluate(root / "repaired", digits_convnet_dir, forget_class=FORGET_CLASS,
                      out_dir=root / "repaired-evaluation", device="cpu", progress=False)
    return {"dir": root / "repaired", "evaluation": root / "repaired-evaluation", "result": judged,
            "method": method, "metadata": out.metadata}


def test_the_repair_rung_removes_the_refusal_within_its_budget(repaired, dampened, spec):
    from kfp.dsl import Artifact

    from components.ladder import climb
    from lethe.steps.ladder import LadderRecord
    from lethe.steps.repair import RepairRecord

    assert repaired["method"] == "retain_finetune"
    record = RepairRecord.read(repaired["dir"] / "repair.json")
    assert record.stopped == "done" and 0 < record.sample_steps <= record.budget
    assert record.budget == int(record.share_of_recipe * record.recipe["epochs"] * record.recipe["samples"])
    assert record.share_of_recipe <= 0.2 and repaired["metadata"]["method"] == "retain_finetune"
    before, after = dampened["result"].candidate, repaired["result"].candidate
    assert repaired["result"].decision == "pass", repaired["result"].gate["reasons"]
    assert after["test_accuracy"] > before["test_accuracy"] + 0.02 and after["forget_accuracy"] <= 0.05
    rungs = LadderRecord.read(repaired["dir"] / "ladder.json").rungs
    assert [r["rung"] for r in rungs] == ["dampen", "repair"] and rungs[0]["decision"] == "review"
    assert climb.python_func(evaluation=_artifact(Artifact, repaired["evaluation"]),
                             forget=_artifact(Artifact, spec), done="repair", ladder="") == "register"


def test_a_repair_that_would_exceed_its_budget_stops_and_says_so(home, dampened, digits_convnet_dir, caplog):
    from lethe.steps.repair import RepairRecord, repair

    root, _ = home
    with caplog.at_level(logging.WARNING, logger="lethe.steps.repair"):
        result = repair(dampened["dir"], digits_convnet_dir, forget_class=FORGET_CLASS,
                        out_dir=root / "starved", method="retain_finetune", share=1e-5, device="cpu",
                        progress=False)
    assert result.stopped == "budget" and result.sample_steps <= result.budget
    assert RepairRecord.read(root / "starved" / "repair.json").stopped == "budget"
    assert "stopped at its budget" in caplog.text


def test_the_register_step_names_every_rung(home, repaired, spec):
    from lethe.registry import Registry
    from lethe.steps.outcome import read_outcome
    from lethe.steps.register import register_and_gate

    registered = register_and_gate(repaired["dir"], repaired["evaluation"], spec, run_id="ladder-run-1")
    assert registered.decision == "pass"
    info = Registry().version(registered.version)
    assert info.tags["lethe.rungs"] == "dampen,repair"
    ladder = json.loads(info.tags["lethe.ladder"])
    assert [r["rung"] for r in ladder] == ["dampen", "repair"] and ladder[1]["method"] == "retain_finetune"
    assert ladder[0]["decision"] == "review" and ladder[1]["decision"] == "pass"
    assert "Ladder: dampen (lfssd" in info.description and "repair (retain_finetune" in info.description
    outcome = read_outcome("ladder-run-1")
    assert [r["rung"] for r in outcome.certified()["ladder"]] == ["dampen", "repair"]


def test_lethe_remedy_climbs_from_the_cli_and_refuses_bad_input_first(home, dampened, digits_convnet_dir,
                                                                      capsys):
    from lethe.cli import main

    root, _ = home
    out = root / "remedied"
    common = ["remedy", "--candidate", str(dampened["dir"]), "--parent", str(digits_convnet_dir),
              "--forget-class", str(FORGET_CLASS), "--device", "cpu", "--no-progress"]
    assert main([*common, "--out", str(out), "--ladder", "repair: {share: -1}"]) == 2
    assert "at least 0" in capsys.readouterr().err and not out.exists()
    assert main([*common, "--out", str(out), "--repair", "retain_finetune"]) == 0
    printed = capsys.readouterr().out
    assert "rung dampen (lfssd" in printed and "rung repair (retain_finetune" in printed
    assert "gate pass after repair" in printed
    rungs = json.loads((out / "ladder.json").read_text())["rungs"]
    assert [(r["rung"], r["decision"]) for r in rungs] == [("dampen", "review"), ("repair", "pass")]
    assert (root / "remedied.ladder" / "repair-evaluation" / "metrics.json").is_file()


def test_the_retrain_rung_retrains_without_the_forget_set_and_keeps_the_history(home, dampened,
                                                                                  digits_convnet_dir: Path):
    from lethe.forgetting.spec import ForgetSpec
    from lethe.models import read_card
    from lethe.steps.ladder import LadderRecord
    from lethe.steps.retrain_rung import retrain_rung

    root, _ = home
    # A model directory (no registered version): retrained from the root's own train.json.
    spec = ForgetSpec(scenario="class", dataset="digits", forget_class=FORGET_CLASS).save(root / "forget-dir")
    result = retrain_rung(digits_convnet_dir, spec, dampened["dir"], dampened["evaluation"],
                          out_dir=root / "retrained", parent_out=root / "retrained-parent",
                          forget_out=root / "retrained-forget", epochs=1, device="cpu", progress=False)
    assert result.forget_classes == [FORGET_CLASS] and result.excluded > 0 and result.epochs == 1
    assert read_card(root / "retrained").extra["excluded"] == result.excluded
    rungs = LadderRecord.read(root / "retrained" / "ladder.json").rungs
    assert [r["rung"] for r in rungs] == ["dampen", "retrain"] and rungs[0]["decision"] == "review"
    assert ForgetSpec.load(root / "retrained-forget").forget_class == FORGET_CLASS
