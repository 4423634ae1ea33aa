"""KFP pipelines built from components/: the scheduled deletion run, on-demand unlearning, importances,
reference models of a version (audit) and the retrain remedy.

`PIPELINES` maps each pipeline's short name (used by `lethe pipeline ...`) to its function.
"""

from pipelines.reference_models import reference_models_pipeline
from pipelines.retrain import retrain_pipeline
from pipelines.scheduled import scheduled_deletion_pipeline
from pipelines.sharded_importances import importances_pipeline
from pipelines.unlearning import unlearning_pipeline

PIPELINES = {
    "scheduled": scheduled_deletion_pipeline,
    "unlearning": unlearning_pipeline,
    "importances": importances_pipeline,
    "reference-models": reference_models_pipeline,
    "retrain": retrain_pipeline,
}

__all__ = ["PIPELINES", "importances_pipeline", "reference_models_pipeline", "retrain_pipeline",
           "scheduled_deletion_pipeline", "unlearning_pipeline"]
