"""The ladder from the command line: evaluate a candidate, and climb while the gate refuses and the policy
has a rung that can help, as the pipelines do with `climb` and `dsl.If` (`lethe unlearn --repair`,
`lethe remedy`).

Each rung works in its own folder of `work_dir` (`<rung>/` for a candidate, `<rung>-evaluation/` for its
evidence); the last candidate is copied to `out_dir` with its `ladder.json`. The retrain rung needs the
registry and the ledger (what the lineage forgot): when the policy leads there, the result says so and
`lethe retrain` does it.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lethe.evaluation.ladder import LadderPolicy, NextRung, load_ladder, next_rung
from lethe.evaluation.thresholds import Thresholds, load_thresholds
from lethe.forgetting.scenarios import infer_scenario
from lethe.steps.ladder import LADDER_FILE, LadderRecord, final_history
from lethe.steps.results import EvaluationResult


@dataclass(frozen=True)
class LadderRun:
    """What climbing did: every rung (method, cost, the gate's verdict), the last candidate and its
    evaluation, and what the policy says comes next (`register`, or `retrain` by `lethe retrain`)."""

    out_dir: Path
    rungs: list[dict[str, Any]]
    evaluation: EvaluationResult
    evaluation_dir: Path
    next: NextRung

    @property
    def decision(self) -> str:
        return self.evaluation.decision


def forced_policy(policy: LadderPolicy, method: str | None) -> LadderPolicy:
    """The policy with its repair rung on and set to `method` (`--repair METHOD`; `auto`: its own rule)."""
    if not method:
        return policy
    rungs = tuple(r for r in ("dampen", "repair", "retrain") if r in {*policy.rungs, "repair"})
    return dataclasses.replace(policy, rungs=rungs, repair_method=method)


def climb_ladder(
    candidate_dir: str | Path,
    parent_dir: str | Path,
    dataset: str | None = None,
    *,
    forget_ids: Sequence[str] = (),
    forget_subjects: Sequence[str] = (),
    forget_class: int | None = None,
    scenario: str | None = None,
    out_dir: str | Path,
    work_dir: str | Path,
    done: str = "dampen",
    ladder: str | Path | LadderPolicy | None = None,
    method: str | None = None,
    thresholds: str | Path | Thresholds | None = None,
    requests: Mapping[str, Sequence[str]] | None = None,
    device: str | None = None,
    progress: bool = True,
    subjects_file: str | Path | None = None,
    data_dir: str | None = None,
) -> LadderRun:
    """Evaluate the candidate made by rung `done` and climb the `ladder` policy's rungs while the gate
    refuses (`method`: the repair rung's method, forcing the rung on). The policy and the thresholds are
    read (and refused) before anything is computed."""
    from lethe.steps.evaluate import evaluate
    from lethe.steps.repair import repair

    policy = forced_policy(load_ladder(ladder), method)
    limits = load_thresholds(thresholds)
    row = infer_scenario(scenario, forget_ids=forget_ids, forget_subjects=forget_subjects,
                         forget_class=forget_class)
    forget = {"forget_ids": forget_ids, "forget_subjects": forget_subjects, "forget_class": forget_class,
              "scenario": row.name, "subjects_file": subjects_file, "data_dir": data_dir}
    work, current, rung = Path(work_dir), Path(candidate_dir), done
    while True:
        judged_dir = work / f"{rung}-evaluation"
        judged = evaluate(current, parent_dir, dataset, **forget, out_dir=judged_dir, thresholds=limits,
                          device=device, progress=progress, requests=requests)
        following = next_rung(policy, judged.gate, done=rung, row=row)
        if following != "repair":
            break
        repaired = work / "repair"
        repair(current, parent_dir, dataset, **forget, out_dir=repaired, evaluation_dir=judged_dir,
               ladder=policy, device=device, progress=progress)
        current, rung = repaired, "repair"
    rungs = final_history(current, judged.metrics)
    out = Path(out_dir)
    if out.resolve() != current.resolve():
        shutil.copytree(current, out, dirs_exist_ok=True)
    LadderRecord(rungs=rungs).write(out / LADDER_FILE)
    return LadderRun(out_dir=out, rungs=rungs, evaluation=judged, evaluation_dir=judged_dir, next=following)
