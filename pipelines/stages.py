"""The stages the pipelines share: the ladder. importances → dampen (GPU) → evaluate → then, as the ladder
policy says for the gate's verdict (`climb`): register, or repair (GPU) → evaluate → register, or retrain
(GPU) → evaluate → register. Each register applies the gate (champion on pass, review otherwise); in
the scheduled run a settle task follows it, before any refresh of the new champion's importances.

Called inside a `@dsl.pipeline` function; each adds its tasks to the pipeline being built.
"""

from __future__ import annotations

from kfp import dsl

from components.audit import register_retrained
from components.ladder import climb, repair, retrain_rung
from components.platform import configure
from components.requests import settle_requests
from components.training_set_importances import compute_importances, refresh_importances
from components.unlearning import evaluate, register_and_gate, unlearn


def _after_register(registered: dsl.PipelineTask, candidate: dsl.PipelineChannel, *, run_id: str,
                    settle: bool, refresh: dsl.PipelineChannel, dataset: str, batch_size: int,
                    method: str) -> None:
    # The run's requests settle on the gate's verdict (`settle`: the scheduled run); then a new
    # champion's importances are computed now (refresh) or by the next run that needs them: a request
    # never waits for the next champion's D pass.
    settled = configure(settle_requests(run_id=run_id).after(registered)) if settle else registered
    with dsl.If(registered.outputs["Output"] == "pass", name="new-champion"), \
            dsl.If(refresh == True, name="refresh"):  # noqa: E712 (builds a KFP condition, not a bool)
        configure(refresh_importances(model=candidate, dataset=dataset, batch_size=batch_size,
                                      method=method).after(settled))


def _retrain(*, parent: dsl.PipelineChannel, forget: dsl.PipelineChannel, previous: dsl.PipelineChannel,
             evaluation: dsl.PipelineChannel, run_id: str, dataset: str, model_name: str, batch_size: int,
             method: str, thresholds: str, refresh: dsl.PipelineChannel, settle: bool) -> None:
    """The last rung: retrain the parent without the forget set, evaluate, register behind the gate."""
    trained = configure(retrain_rung(parent=parent, forget=forget, previous=previous, evaluation=evaluation,
                                     model_name=model_name))
    judged = configure(evaluate(candidate=trained.outputs["candidate"],
                                parent=trained.outputs["retrained_parent"],
                                forget=trained.outputs["retrained_forget"], dataset="",
                                thresholds=thresholds))
    registered = configure(register_retrained(candidate=trained.outputs["candidate"],
                                              evaluation=judged.outputs["evaluation"],
                                              forget=trained.outputs["retrained_forget"], run_id=run_id,
                                              model_name=model_name))
    _after_register(registered, trained.outputs["candidate"], run_id=run_id, settle=settle, refresh=refresh,
                    dataset=dataset, batch_size=batch_size, method=method)


def forget_and_register(
    *,
    parent: dsl.PipelineChannel,
    forget: dsl.PipelineChannel,
    run_id: str,
    dataset: str,
    model_name: str,
    batch_size: int,
    method: str,
    alpha: str,
    cutoff: str,
    lam: float,
    thresholds: str,
    refresh: dsl.PipelineChannel,
    ladder: str = "",
    settle: bool = False,
) -> None:
    """Add the forgetting stages: the ladder's rungs, each behind the gate's verdict on the one before.
    `ladder`: the ladder policy (inline YAML or a storage URI; empty: `lethe/evaluation/ladder.yaml`).
    `settle`: the run holds ledger requests, settled by a task right after the version is registered."""
    importances = configure(compute_importances(model=parent, dataset=dataset, batch_size=batch_size,
                                                method=method))
    candidate = configure(unlearn(model=parent, forget=forget, importances=importances.outputs["importances"],
                                  dataset=dataset, batch_size=batch_size, alpha=alpha, cutoff=cutoff, lam=lam,
                                  method=method, thresholds=thresholds))
    evaluation = configure(evaluate(candidate=candidate.outputs["candidate"], parent=parent, forget=forget,
                                    dataset=dataset, thresholds=thresholds))
    shared = {"run_id": run_id, "dataset": dataset, "model_name": model_name, "batch_size": batch_size,
              "method": method, "thresholds": thresholds, "refresh": refresh, "settle": settle}

    def register(made: dsl.PipelineChannel, judged: dsl.PipelineChannel) -> None:
        registered = configure(register_and_gate(candidate=made, evaluation=judged, forget=forget,
                                                 importances=importances.outputs["importances"],
                                                 run_id=run_id, model_name=model_name))
        _after_register(registered, made, run_id=run_id, settle=settle, refresh=refresh, dataset=dataset,
                        batch_size=batch_size, method=method)

    after_dampening = configure(climb(evaluation=evaluation.outputs["evaluation"], forget=forget,
                                      done="dampen", ladder=ladder))
    with dsl.If(after_dampening.outputs["Output"] == "register", name="dampened"):
        register(candidate.outputs["candidate"], evaluation.outputs["evaluation"])
    with dsl.If(after_dampening.outputs["Output"] == "repair", name="repair"):
        repaired = configure(repair(candidate=candidate.outputs["candidate"], parent=parent, forget=forget,
                                    evaluation=evaluation.outputs["evaluation"], dataset=dataset,
                                    ladder=ladder))
        reevaluation = configure(evaluate(candidate=repaired.outputs["repaired"], parent=parent,
                                          forget=forget, dataset=dataset, thresholds=thresholds))
        after_repair = configure(climb(evaluation=reevaluation.outputs["evaluation"], forget=forget,
                                       done="repair", ladder=ladder))
        with dsl.If(after_repair.outputs["Output"] == "register", name="repaired"):
            register(repaired.outputs["repaired"], reevaluation.outputs["evaluation"])
        with dsl.If(after_repair.outputs["Output"] == "retrain", name="retrain-after-repair"):
            _retrain(parent=parent, forget=forget, previous=repaired.outputs["repaired"],
                     evaluation=reevaluation.outputs["evaluation"], **shared)
    with dsl.If(after_dampening.outputs["Output"] == "retrain", name="retrain"):
        _retrain(parent=parent, forget=forget, previous=candidate.outputs["candidate"],
                 evaluation=evaluation.outputs["evaluation"], **shared)
