"""The stages the pipelines share: importances → unlearn (GPU) → evaluate → register behind the gate.

Called inside a `@dsl.pipeline` function; each adds its tasks to the pipeline being built.
"""

from __future__ import annotations

from kfp import dsl
from kfp.dsl import PipelineTask

from components.platform import configure
from components.training_set_importances import compute_importances, refresh_importances
from components.unlearning import evaluate, register_and_gate, unlearn


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
    refresh: dsl.PipelineChannel | None,
) -> PipelineTask:
    """Add the forgetting stages; returns the register task (its output: the decision)."""
    importances = configure(compute_importances(model=parent, dataset=dataset, batch_size=batch_size,
                                                method=method))
    candidate = configure(unlearn(model=parent, forget=forget, importances=importances.outputs["importances"],
                                  dataset=dataset, batch_size=batch_size, alpha=alpha, cutoff=cutoff, lam=lam,
                                  method=method, thresholds=thresholds))
    evaluation = configure(evaluate(candidate=candidate.outputs["candidate"], parent=parent, forget=forget,
                                    dataset=dataset, thresholds=thresholds))
    registered = configure(register_and_gate(candidate=candidate.outputs["candidate"],
                                             evaluation=evaluation.outputs["evaluation"], forget=forget,
                                             importances=importances.outputs["importances"], run_id=run_id,
                                             model_name=model_name))

    # A new champion's importances are computed now (refresh) or by the next run that needs them.
    if refresh is None:  # the caller refreshes the champion itself, after settling (pipelines.scheduled)
        return registered
    with dsl.If(registered.outputs["Output"] == "pass", name="new-champion"), \
            dsl.If(refresh == True, name="refresh"):  # noqa: E712 (builds a KFP condition, not a bool)
        configure(refresh_importances(model=candidate.outputs["candidate"], dataset=dataset,
                                      batch_size=batch_size, method=method))
    return registered
