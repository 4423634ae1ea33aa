"""On-demand unlearning: one model, one forget set (sample ids, subjects or a class), one candidate.

Subject ids given here are run parameters, visible to whoever can read the run in KFP: GDPR
requests belong in the ledger (`lethe requests add`) and the scheduled pipeline.
"""

# No `from __future__ import annotations`: KFP reads the parameters' annotations as types.
from kfp import dsl

from components.platform import configure
from components.requests import prepare_request
from lethe.kfp.params import documented
from pipelines.stages import forget_and_register

NAME = "lethe-unlearning"


@dsl.pipeline(name=NAME, description="Forget samples, subjects or a class from a model version (LFSSD), "
                                     "evaluate, register behind the gate.")
@documented("unlearning")
def unlearning_pipeline(
    model: str = "champion",
    dataset: str = "",
    forget_ids: list = [],  # noqa: B006 (KFP reads the default; it is never mutated)
    forget_subjects: list = [],  # noqa: B006
    forget_class: int = -1,
    scenario: str = "subject",
    model_name: str = "",
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
    """An on-demand order: forget samples, subjects or a class from one model version."""
    prepared = configure(prepare_request(model=model, dataset=dataset, forget_ids=forget_ids,
                                         forget_subjects=forget_subjects, forget_class=forget_class,
                                         scenario=scenario, subject_map=subject_map))
    forget_and_register(parent=prepared.outputs["parent"], forget=prepared.outputs["forget"],
                        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, dataset=dataset, model_name=model_name,
                        batch_size=batch_size, method=method, alpha=alpha, cutoff=cutoff, lam=lam,
                        thresholds=thresholds, refresh=refresh, ladder=ladder)
