"""The scheduled GDPR deletion run: collect pending requests, forget them, settle them.

collect → importances of D (cached) → unlearn (GPU) → evaluate → (the ladder) → register + gate →
settle requests → (new champion: refresh importances). The requests settle as soon as the gate has
decided, not after the next champion's D pass; `finalize_requests` is the exit task of a
`dsl.ExitHandler`, so it runs whatever happens: it releases what a failed run still holds, then
applies the retention policy.
No pending request: `collect` returns 0 and everything under `dsl.If` is skipped (a clean no-op).

One run forgets one batch of subjects (the ledger holds GDPR requests, which are about people);
forgetting a whole class is an on-demand order (`unlearning_pipeline`, scenario `class`), since a
class is a product decision, not a person's request, and the gate judges the two differently.
"""

# No `from __future__ import annotations`: KFP reads the parameters' annotations as types.
from kfp import dsl

from components.platform import configure
from components.requests import collect_requests, finalize_requests
from lethe.kfp.params import documented
from pipelines.stages import forget_and_register

NAME = "lethe-scheduled-deletion"


@dsl.pipeline(name=NAME, description="Forget the pending GDPR erasure requests from the champion model "
                                     "(LFSSD), evaluate, register behind the gate, settle the requests.")
@documented("scheduled")
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
    ladder: str = "",
) -> None:
    """The nightly run: forget the pending requests from the champion, judge, register, settle."""
    run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    finalize = configure(finalize_requests(run_id=run_id, model_name=model_name))
    with dsl.ExitHandler(finalize, name="deletion-run"):
        collect = configure(collect_requests(run_id=run_id, dataset=dataset, model_name=model_name,
                                             max_requests=max_requests, subject_map=subject_map,
                                             batch_size=batch_size, method=method, alpha=alpha,
                                             cutoff=cutoff, lam=lam, thresholds=thresholds,
                                             refresh=refresh, ladder=ladder))
        with dsl.If(collect.outputs["Output"] > 0, name="requests-pending"):
            forget_and_register(parent=collect.outputs["parent"], forget=collect.outputs["forget"],
                                run_id=run_id, dataset=dataset, model_name=model_name,
                                batch_size=batch_size, method=method, alpha=alpha, cutoff=cutoff, lam=lam,
                                thresholds=thresholds, refresh=refresh, ladder=ladder, settle=True)
