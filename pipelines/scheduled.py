"""The scheduled GDPR deletion run: collect pending requests, forget them, settle them, retire copies.

collect → importances of D (cached) → unlearn (GPU) → evaluate → register + gate → settle requests →
refresh the champion's importances; then the exit task. `settle_requests` is a regular task after the
gate that runs even when a step before it failed (`ignore_upstream_failure`), so the requests are
settled before the refresh starts, and the refresh reads the champion from the registry.
`finalize_requests`, the exit task of the `dsl.ExitHandler`, releases the requests a failed run still
holds, then applies the retention policy: it runs last in every run (kfp.local runs exit tasks last), with
requests or without, and consumes nothing from inside the handler (KFP refuses that), and a component
used once per pipeline keeps one step row per task. No pending request: `collect` returns 0 and
everything under `dsl.If` is skipped.

One run forgets one batch of subjects (the ledger holds GDPR requests, which are about people);
forgetting a whole class is an on-demand order (`unlearning_pipeline`, scenario `class`), since a
class is a product decision, not a person's request, and the gate judges the two differently.
"""

# No `from __future__ import annotations`: KFP reads the parameters' annotations as types.
from kfp import dsl

from components.platform import configure
from components.requests import collect_requests, finalize_requests
from components.retention import refresh_champion_importances, settle_requests
from pipelines.stages import forget_and_register

NAME = "lethe-scheduled-deletion"


@dsl.pipeline(name=NAME, description="Forget the pending GDPR erasure requests from the champion model "
                                     "(LFSSD), evaluate, register behind the gate, settle the requests.")
def scheduled_deletion_pipeline(
    dataset: str = "",
    model_name: str = "",
    max_requests: int = 0,
    subject_map: str = "",
    batch_size: int = 1,  # importance batch size; 1 = per sample (lethe.steps.importance_pass)
    method: str = "lfssd",
    alpha: str = "search",
    cutoff: str = "",
    lam: float = 1.0,
    thresholds: str = "",
    refresh: bool = True,
) -> None:
    """Empty `dataset`/`model_name` mean the champion's own data set and LETHE_MODEL_NAME;
    `max_requests` 0 takes every pending request; `alpha`: a number, `assd` or `search`; `cutoff`: where
    dampening may act (empty: searched with α; `all`; a stage name); `thresholds`: the gate's limits,
    inline YAML or a storage URI (a pod cannot read a file on the submitting machine)."""
    run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    finalize = configure(finalize_requests(run_id=run_id, model_name=model_name))
    with dsl.ExitHandler(finalize, name="deletion-run"):
        collect = configure(collect_requests(run_id=run_id, dataset=dataset, model_name=model_name,
                                             max_requests=max_requests, subject_map=subject_map))
        with dsl.If(collect.outputs["Output"] > 0, name="requests-pending"):
            registered = forget_and_register(
                parent=collect.outputs["parent"], forget=collect.outputs["forget"], run_id=run_id,
                dataset=dataset, model_name=model_name, batch_size=batch_size, method=method, alpha=alpha,
                cutoff=cutoff, lam=lam, thresholds=thresholds, refresh=None)
            settle = configure(settle_requests(run_id=run_id).after(registered).ignore_upstream_failure())
            with dsl.If(refresh == True, name="refresh"):  # noqa: E712 (builds a KFP condition, not a bool)
                configure(refresh_champion_importances(dataset=dataset, model_name=model_name,
                                                       batch_size=batch_size, method=method).after(settle))
