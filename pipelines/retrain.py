"""The retrain remedy: a version's own recipe trained without everything it must forget, then evaluated,
registered and gated like any candidate (tagged lethe.remedy=retrain).

Subject ids given here are run parameters, visible to whoever can read the run in KFP: GDPR requests
belong in the ledger, from which the lineage's samples are read anyway.
"""

# No `from __future__ import annotations`: KFP reads the parameters' annotations as types.
from kfp import dsl

from components.audit import register_retrained, retrain
from components.platform import configure
from components.unlearning import evaluate
from lethe.kfp.params import documented

NAME = "lethe-retrain"


@dsl.pipeline(name=NAME, description="Retrain a model version's recipe without every sample it must forget; "
                                     "evaluate, register behind the gate.")
@documented("retrain")
def retrain_pipeline(
    model: str = "champion",
    forget_ids: list = [],  # noqa: B006 (KFP reads the default; it is never mutated)
    forget_subjects: list = [],  # noqa: B006
    forget_class: int = -1,
    subject_map: str = "",
    epochs: int = 0,
    recipe: str = "",
    model_name: str = "",
    thresholds: str = "",
) -> None:
    """The exact remedy: the recipe retrained without everything the version must forget."""
    trained = configure(retrain(model=model, forget_ids=forget_ids, forget_subjects=forget_subjects,
                                forget_class=forget_class, subject_map=subject_map, epochs=epochs,
                                recipe=recipe, model_name=model_name))
    evaluation = configure(evaluate(candidate=trained.outputs["candidate"], parent=trained.outputs["parent"],
                                    forget=trained.outputs["forget"], dataset="", thresholds=thresholds))
    configure(register_retrained(candidate=trained.outputs["candidate"],
                                 evaluation=evaluation.outputs["evaluation"],
                                 forget=trained.outputs["forget"], run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                                 model_name=model_name))
