"""Components for the forgetting itself: unlearn (GPU), evaluate, register behind the gate."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Metrics, Model, Output

from components.image import IMAGE
from components.step import DATA_PASS, step


# Reads the data set (s3:// on a cluster) and thresholds given as a storage URI.
@step(stores=("storage",), gpu=True, resources=DATA_PASS, cache=True, retry=True, display_name="unlearn")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def unlearn(
    model: Input[Model],
    forget: Input[Artifact],
    importances: Input[Artifact],
    dataset: str,
    batch_size: int,
    alpha: str,
    cutoff: str,
    lam: float,
    method: str,
    thresholds: str,
    candidate: Output[Model],
) -> float:
    """Dampening on the forget set with the cached full-data importances of `method` (the run's
    importance method, LFSSD by default), where and how much chosen per request against the gate's
    `thresholds` (inline YAML or a storage URI); returns the α used."""
    from components.adapters import unlearn_from_spec

    result = unlearn_from_spec(model.path, forget.path, importances.path, candidate.path,
                               dataset=dataset or None, batch_size=batch_size, alpha=alpha,
                               cutoff=cutoff or None, lam=lam, method=method or None,
                               thresholds=thresholds or None)
    candidate.metadata.update(result.summary)
    return float(result.alpha)


# Reads the data set, the parent's reference models and thresholds given as a storage URI.
@step(stores=("storage",), gpu=True, resources=DATA_PASS, cache=True, retry=True, display_name="evaluate")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    candidate: Input[Model],
    parent: Input[Model],
    forget: Input[Artifact],
    dataset: str,
    thresholds: str,
    evaluation: Output[Artifact],
    report: Output[HTML],
    metrics: Output[Metrics],
) -> str:
    """Accuracies, membership inference, the Evidently report and the gate; returns pass or review."""
    from components.adapters import evaluate_from_spec

    result = evaluate_from_spec(candidate.path, parent.path, forget.path, evaluation.path,
                                report_path=report.path, dataset=dataset or None,
                                thresholds=thresholds or None)
    for name, value in result.scalars.items():
        metrics.log_metric(name, value)
    return result.decision


# Retried: a rerun with the same run id finds the version it registered (lethe.run_id tag).
# Writes the run's outcome (the exit task reads it) under the artifacts root.
@step(stores=("registry", "storage"), cache=False, retry=True, display_name="register + gate")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register_and_gate(
    candidate: Input[Model],
    evaluation: Input[Artifact],
    forget: Input[Artifact],
    importances: Input[Artifact],
    run_id: str,
    model_name: str,
    registered: Output[Artifact],
) -> str:
    """Register the candidate in MLflow with its evidence; champion on pass, review otherwise.

    Returns the decision (`pass`, `review`, `stale`); the version is in `registered`'s metadata."""
    from lethe.steps.register import register_and_gate as step

    result = step(candidate.path, evaluation.path, forget.path, run_id=run_id, model_name=model_name or None,
                  importances_path=importances.path)
    registered.metadata.update(result.to_dict())
    with open(registered.path, "w") as handle:
        handle.write(result.version + "\n")
    return result.decision
