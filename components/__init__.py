"""KFP components: one thin `@dsl.component` per step, each calling one function of `lethe.steps`.

Lightweight Python components: KFP serialises each function's source into the pipeline YAML, so
every body imports what it needs itself and delegates at once to the library. The image
(`LETHE_IMAGE`, read when this package is imported) has lethe, and kfp, installed.
"""

from components.audit import (
    merge_reference_models,
    plan_reference_models,
    register_retrained,
    retrain,
    train_reference_model,
)
from components.importances import (
    compute_importances,
    compute_importances_shard,
    fetch_model,
    merge_importances,
    plan_shards,
    refresh_importances,
)
from components.requests import collect_requests, finalize_requests, prepare_request
from components.unlearning import evaluate, register_and_gate, unlearn

ALL = (
    collect_requests,
    prepare_request,
    fetch_model,
    compute_importances,
    plan_shards,
    compute_importances_shard,
    merge_importances,
    unlearn,
    evaluate,
    register_and_gate,
    refresh_importances,
    finalize_requests,
    plan_reference_models,
    train_reference_model,
    merge_reference_models,
    retrain,
    register_retrained,
)

__all__ = [
    "ALL",
    "collect_requests",
    "compute_importances",
    "compute_importances_shard",
    "evaluate",
    "fetch_model",
    "finalize_requests",
    "merge_importances",
    "merge_reference_models",
    "plan_reference_models",
    "plan_shards",
    "prepare_request",
    "refresh_importances",
    "register_and_gate",
    "register_retrained",
    "retrain",
    "train_reference_model",
    "unlearn",
]
