"""The ladder's record and its decision step: which rungs made a candidate, what each cost and found.

`ladder.json` travels inside a candidate's directory: one entry per rung climbed before the candidate
was made (its method, cost and the gate's verdict on its candidate), and a last entry for the rung that
made this candidate, whose verdict the register step fills in from the final evaluation. The registered
version's tags and description and each request's certificate name every rung from it. A candidate
without one was made by dampening alone.

`climb(evaluation, forget, ladder, done)` is the pipelines' decision between rungs: `register`, `repair`
or `retrain` (`lethe.evaluation.ladder.next_rung`), for `dsl.If` to branch on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from lethe.errors import LetheError, PipelineError
from lethe.evaluation.ladder import LadderPolicy, NextRung, load_ladder, next_rung, refusals
from lethe.forgetting.scenarios import scenario as scenario_row
from lethe.forgetting.spec import ForgetSpec
from lethe.steps.layout import DAMPENING_FILE, METRICS_FILE
from lethe.storage.records import Record

LADDER_FILE = "ladder.json"
#: The per-example share reported per rung (the gate's 1% false-positive rate).
FLAGGED_FPR = "0.01"


class LadderRecord(Record):
    """The rungs that made a candidate, in order (see the module docstring)."""

    FORMAT: ClassVar[str] = "lethe-ladder/1"
    WHAT: ClassVar[str] = "a lethe ladder record"
    ERROR: ClassVar[type[LetheError]] = PipelineError
    JSON_INDENT: ClassVar[int] = 2

    rungs: list[dict[str, Any]] = Field(default_factory=list)


def read_metrics(evaluation_dir: str | Path) -> dict[str, Any]:
    path = Path(evaluation_dir) / METRICS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PipelineError(f"cannot read the evaluation at {path}: {exc}") from exc


def verdict(metrics: dict[str, Any]) -> dict[str, Any]:
    """What a rung's evaluation found, in the numbers the ladder reports: the gate's decision and
    refusals, each request's outcome, the forget samples' flagged share (per-example test, 1% FPR) with
    its interval, and the candidate's test accuracy."""
    gate = metrics.get("gate") or {}
    overall = ((metrics.get("per_example") or {}).get("overall") or {}).get(FLAGGED_FPR) or {}
    flagged = overall.get("candidate") or {}
    found: dict[str, Any] = {
        "decision": gate.get("decision"), "refusals": list(refusals(gate)),
        "requests": {rid: str(r.get("outcome")) for rid, r in (gate.get("requests") or {}).items()},
        "test_accuracy": (metrics.get("candidate") or {}).get("test_accuracy"),
    }
    if flagged.get("share") is not None:
        found["flagged_share"] = flagged.get("share")
        found["flagged_ci"] = [flagged.get("ci_low"), flagged.get("ci_high")]
    return found


def dampening_rung(candidate_dir: str | Path) -> dict[str, Any]:
    """The dampen rung of a candidate made by the unlearn step (from its dampening.json)."""
    from lethe.steps.dampening_record import DampeningRecord

    path = Path(candidate_dir) / DAMPENING_FILE
    if not path.is_file():
        return {"rung": "dampen"}
    record = DampeningRecord.read(path)
    return {"rung": "dampen", "method": record.method, "alpha": record.alpha,
            "fraction_dampened": record.fraction, "seconds": record.seconds}


def history_of(candidate_dir: str | Path) -> list[dict[str, Any]]:
    """The candidate's rungs: its ladder.json, else the dampen rung alone."""
    path = Path(candidate_dir) / LADDER_FILE
    if path.is_file():
        return [dict(rung) for rung in LadderRecord.read(path).rungs]
    return [dampening_rung(candidate_dir)]


def extend_history(candidate_dir: str | Path, evaluation_dir: str | Path, next_entry: dict[str, Any],
                   out_dir: str | Path) -> list[dict[str, Any]]:
    """Write into `out_dir` the history of a candidate made from `candidate_dir`'s: its rungs, the last
    one completed with its evaluation's verdict, then `next_entry` (the rung that made the new one)."""
    rungs = history_of(candidate_dir)
    rungs[-1] = {**rungs[-1], **verdict(read_metrics(evaluation_dir))}
    rungs.append(dict(next_entry))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    LadderRecord(rungs=rungs).write(Path(out_dir) / LADDER_FILE)
    return rungs


def final_history(candidate_dir: str | Path, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rung of a candidate about to be registered, the last one with the final verdict."""
    rungs = history_of(candidate_dir)
    rungs[-1] = {**rungs[-1], **verdict(metrics)}
    return rungs


def climb(evaluation_dir: str | Path, forget_path: str | Path, *, done: str,
          ladder: str | LadderPolicy | None = None) -> NextRung:
    """After rung `done`, what the run does with the gate's verdict in `evaluation_dir`: `register`,
    `repair` or `retrain`."""
    policy = load_ladder(ladder)
    spec = ForgetSpec.load(forget_path)
    gate = read_metrics(evaluation_dir).get("gate") or {}
    return next_rung(policy, gate, done=done, row=scenario_row(spec.scenario))


#: The card key that carries the root recipe's size down a lineage (a descendant's card has no `training`).
ROOT_RECIPE_KEY = "root_recipe"


def recipe_size(card: Any, training_samples: int) -> dict[str, int] | None:
    """{"epochs", "samples"} of the root recipe a model descends from, as far as its card says: its own
    training (a root: its data less what it was trained without), else what its ancestors passed down."""
    carried = card.extra.get(ROOT_RECIPE_KEY)
    if isinstance(carried, dict) and carried.get("epochs") and carried.get("samples"):
        return {"epochs": int(carried["epochs"]), "samples": int(carried["samples"])}
    training = card.extra.get("training")
    if isinstance(training, dict) and training.get("epochs"):
        excluded = card.extra.get("excluded")
        samples = training_samples - (int(excluded) if isinstance(excluded, int) else 0)
        return {"epochs": int(training["epochs"]), "samples": max(1, samples)}
    return None
