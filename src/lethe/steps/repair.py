"""The `repair` step: the ladder's second rung, a budgeted repair of a dampened candidate.

Loads the candidate (the dampened model) and its parent, resolves the forget set against their data,
chooses the repair method (the one named, else the ladder policy's for the gate's refusal of the
candidate: `lethe.evaluation.ladder.repair_method_for`), sets its budget as a share of the root recipe's
sample-steps (its epochs × training samples) and runs it through `lethe.unlearning.repair.run_repair`.
Writes a model directory with `repair.json` (method, budget, spending, time) and `ladder.json` (every
rung so far), and keeps the candidate's `dampening.json`, so the evaluation still plots the dampening.
Methods are looked up by name in the repair registry, never imported here.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import ConfigDict, Field

from lethe.devices import default_device
from lethe.errors import LetheError, RepairError
from lethe.evaluation.ladder import LadderPolicy, load_ladder, repair_method_for
from lethe.models import load_model, save_model
from lethe.steps.forget_set import load_forget_set
from lethe.steps.ladder import (
    LADDER_FILE,
    ROOT_RECIPE_KEY,
    LadderRecord,
    extend_history,
    history_of,
    read_metrics,
    recipe_size,
)
from lethe.steps.layout import DAMPENING_FILE
from lethe.steps.results import RepairResult
from lethe.storage.records import Record
from lethe.unlearning.repair import RepairBudget, RepairData, RepairSettings, get_repair, run_repair

log = logging.getLogger(__name__)

REPAIR_FILE = "repair.json"
#: Keys of the candidate's card the repaired model's card does not copy (save_model writes its own).
_OWN_KEYS = ("format", "fingerprint", "created_at", "lethe_version")


class RepairRecord(Record):
    """What the repair step did to a candidate (`repair.json`, beside the repaired model's files)."""

    FORMAT: ClassVar[str] = "lethe-repair/1"
    WHAT: ClassVar[str] = "a lethe repair report"
    ERROR: ClassVar[type[LetheError]] = RepairError
    JSON_INDENT: ClassVar[int] = 2
    model_config = ConfigDict(extra="allow")  # a method's own details may grow

    method: str
    needs_labels: bool
    share_of_recipe: float
    recipe: dict[str, int]  # the root recipe's epochs and training samples
    budget: int  # sample-steps allowed
    sample_steps: int  # sample-steps spent
    stopped: str  # "done" or "budget"
    seconds: float  # the method's own time (no evaluation)
    details: dict[str, Any] = Field(default_factory=dict)
    scenario: str
    forget_size: int
    retain_size: int
    input_fingerprint: str  # the candidate repaired
    parent_fingerprint: str
    candidate_fingerprint: str  # the repaired model


def _source(samples: Any, device: torch.device) -> Any:
    """A repair batch source over `samples` (normalised, labelled, on `device`, shuffled by seed)."""

    def batches(batch_size: int, seed: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in samples.batches(batch_size, shuffle=True, seed=seed):
            yield x.to(device), y.to(device)

    return batches


def choose_method(policy: LadderPolicy, row: Any, method: str | None,
                  evaluation_dir: str | Path | None) -> str:
    """The method named, else the policy's for the gate's refusal in `evaluation_dir`."""
    if method:
        name = get_repair(method).name
        if name not in row.repair_rungs:
            allowed = ", ".join(row.repair_rungs) or "none"
            raise RepairError(f"the {row.name} scenario allows the repair rung(s) {allowed}, not {name}")
        return name
    if evaluation_dir is None:
        if policy.repair_method == "auto":
            if not row.repair_rungs:
                raise RepairError(f"the {row.name} scenario has no repair rung")
            return row.repair_rungs[0]
        return repair_method_for(policy, row, {})
    gate = read_metrics(evaluation_dir).get("gate") or {}
    chosen = repair_method_for(policy, row, gate)
    if chosen is None:
        raise RepairError(f"no repair rung of the {row.name} scenario addresses the gate's refusal "
                          f"({', '.join(gate.get('reasons') or []) or 'none given'})")
    return chosen


def repair(
    candidate_path: str | Path,
    parent_path: str | Path,
    dataset: str | None = None,
    *,
    forget_ids: Sequence[str] = (),
    forget_subjects: Sequence[str] = (),
    forget_class: int | None = None,
    scenario: str | None = None,
    out_dir: str | Path,
    method: str | None = None,
    evaluation_dir: str | Path | None = None,
    ladder: str | Path | LadderPolicy | None = None,
    share: float | None = None,
    recipe_epochs: int | None = None,
    device: str | None = None,
    progress: bool = True,
    seed: int = 0,
    subjects_file: str | Path | None = None,
    data_dir: str | None = None,
) -> RepairResult:
    """Repair the candidate at `candidate_path` (dampened from `parent_path`) into `out_dir`.

    `method`: a registered repair method (default: the `ladder` policy's for the refusal recorded in
    `evaluation_dir`, the candidate's evaluation); `share`: its budget as a share of the root recipe's
    sample-steps (default: the policy's, else the method's own; never above the policy's `max_share`);
    `recipe_epochs`: the root recipe's epochs when no card of the lineage records them. Everything is
    checked before anything is written."""
    policy = load_ladder(ladder)
    candidate, card = load_model(candidate_path)
    parent, parent_card = load_model(parent_path)
    forget_set = load_forget_set(dataset, card, forget_ids=forget_ids, forget_subjects=forget_subjects,
                                 forget_class=forget_class, scenario=scenario, subjects_file=subjects_file,
                                 data_dir=data_dir)
    chosen = get_repair(choose_method(policy, forget_set.row, method, evaluation_dir))
    if share is not None and not (0 < share <= policy.max_share):
        raise RepairError(f"a repair's share of the recipe must be in (0, {policy.max_share:g}] (the ladder "
                          f"policy's max_share), not {share:g}")
    size = (recipe_size(parent_card, len(forget_set.train)) or recipe_size(card, len(forget_set.train)))
    if size is None:  # the version's reference models were trained with the root's recipe
        from lethe.audit import find_references

        references = find_references(parent_card)
        epochs = (references.recipe or {}).get("epochs") if references is not None else None
        size = {"epochs": int(epochs), "samples": len(forget_set.train)} if epochs else None
    if size is None and recipe_epochs:
        size = {"epochs": int(recipe_epochs), "samples": len(forget_set.train)}
    if size is None:
        raise RepairError("no card of this lineage records the root recipe's epochs, which the repair's "
                          "budget is a share of: pass the recipe's epochs (--recipe-epochs)")
    used_share = share if share is not None else policy.share_for(chosen.default_share)
    budget = RepairBudget.share_of_recipe(used_share, training_samples=size["samples"], epochs=size["epochs"])

    run_on = torch.device(device or default_device())
    split = forget_set.split
    data = RepairData(forget=_source(split.forget, run_on), retain=_source(split.retain, run_on),
                      num_forget=len(split.forget), num_retain=len(split.retain),
                      num_classes=forget_set.train.num_classes)
    candidate.to(run_on)
    parent.to(run_on)
    torch.manual_seed(seed)
    report = run_repair(chosen, parent, candidate, data, budget, RepairSettings(device=run_on, seed=seed))
    candidate.to("cpu")

    out = Path(out_dir)
    fields = {k: v for k, v in card.to_fields().items() if k not in _OWN_KEYS}
    fields[ROOT_RECIPE_KEY] = size
    fields["repair"] = {"method": chosen.name, "share_of_recipe": used_share, "budget": budget.sample_steps}
    saved = save_model(candidate, out, fields)
    dampening = Path(candidate_path) / DAMPENING_FILE
    if dampening.is_file():  # the evaluation's plots of the dampening still describe this candidate
        shutil.copyfile(dampening, out / DAMPENING_FILE)
    record = RepairRecord(
        method=chosen.name, needs_labels=chosen.needs_labels, share_of_recipe=used_share, recipe=size,
        budget=budget.sample_steps, sample_steps=report.sample_steps, stopped=report.stopped,
        seconds=round(report.seconds, 3), details=report.details, scenario=forget_set.scenario,
        forget_size=len(split.forget), retain_size=len(split.retain), input_fingerprint=card.fingerprint,
        parent_fingerprint=parent_card.fingerprint, candidate_fingerprint=saved.fingerprint)
    record.write(out / REPAIR_FILE)
    rung = {"rung": "repair", "method": chosen.name, "share_of_recipe": used_share,
            "budget": budget.sample_steps, "sample_steps": report.sample_steps, "stopped": report.stopped,
            "seconds": round(report.seconds, 3)}
    if evaluation_dir is not None:
        rungs = extend_history(candidate_path, evaluation_dir, rung, out)
    else:  # repaired without its candidate's evaluation (`lethe remedy --no-evaluate` style): no verdict
        rungs = [*history_of(candidate_path), rung]
        LadderRecord(rungs=rungs).write(out / LADDER_FILE)
    if report.stopped == "budget":
        log.warning("repair %s stopped at its budget: %d of %d sample-steps spent, the next batch would "
                    "have exceeded it", chosen.name, report.sample_steps, budget.sample_steps)
    return RepairResult(out_dir=out, method=chosen.name, share_of_recipe=used_share,
                        budget=budget.sample_steps, sample_steps=report.sample_steps, stopped=report.stopped,
                        seconds=round(report.seconds, 3), rungs=[str(r.get("rung")) for r in rungs],
                        recipe=size)

