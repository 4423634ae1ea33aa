"""The stages the pipelines share: importances → unlearn (GPU) → evaluate → register behind the gate.

Called inside a `@dsl.pipeline` function; each adds its tasks to the pipeline being built.
"""

from __future__ import annotations

from kfp import dsl
from kfp.dsl import PipelineTask

from components import (
    compute_importances,
    evaluate,
    refresh_importances,
    register_and_gate,
    unlearn,
)
from components.platform import configure


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
) -> PipelineTask:
    """Add the forgetting stages; returns the register task (its output: the decision)."""
    importances = compute_importances(model=parent, dataset=dataset, batch_size=batch_size, method=method)
    # Retried: the cache entry it writes is keyed by content (model, data set, method, batch size).
    configure(importances, needs="storage", cache=False, retry=True, display_name="importances of D (cached)")

    candidate = unlearn(model=parent, forget=forget, importances=importances.outputs["importances"],
                        dataset=dataset, batch_size=batch_size, alpha=alpha, cutoff=cutoff, lam=lam,
                        method=method, thresholds=thresholds)
    configure(candidate, needs="none", cache=True, display_name="unlearn")

    evaluation = evaluate(candidate=candidate.outputs["candidate"], parent=parent, forget=forget,
                          dataset=dataset, thresholds=thresholds)
    configure(evaluation, needs="none", cache=True, display_name="evaluate")

    registered = register_and_gate(candidate=candidate.outputs["candidate"],
                                   evaluation=evaluation.outputs["evaluation"], forget=forget,
                                   importances=importances.outputs["importances"], run_id=run_id,
                                   model_name=model_name)
    # Retried: a rerun with the same run id finds the version it registered (lethe.run_id tag).
    configure(registered, needs="registry", cache=False, retry=True, display_name="register + gate")

    # A new champion's importances are computed now (refresh) or by the next run that needs them.
    with dsl.If(registered.outputs["Output"] == "pass", name="new-champion"), \
            dsl.If(refresh == True, name="refresh"):  # noqa: E712 (builds a KFP condition, not a bool)
        refreshed = refresh_importances(model=candidate.outputs["candidate"], dataset=dataset,
                                        batch_size=batch_size, method=method)
        configure(refreshed, needs="storage", cache=False, retry=True,
                  display_name="importances of the new champion")
    return registered
