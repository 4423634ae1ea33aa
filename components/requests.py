"""Components at both ends of a run: take requests (or an on-demand order) in, settle them at the end."""

from kfp import dsl
from kfp.dsl import Artifact, Model, Output

from components.image import IMAGE
from components.step import step


# Never retried: a second claim would take other requests. The subject key hashes the subject map.
# It takes every parameter of the run: a run started from the KFP UI (or a recurring run edited there)
# was never checked by `lethe pipeline submit`, and a bad value must be refused before the claim.
@step(stores=("ledger", "subject_key", "registry", "storage"), cache=False, retry=False,
      display_name="collect requests")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def collect_requests(
    run_id: str,
    dataset: str,
    model_name: str,
    max_requests: int,
    subject_map: str,
    forget: Output[Artifact],
    parent: Output[Model],
    batch_size: int = 1,
    method: str = "lfssd",
    alpha: str = "search",
    cutoff: str = "",
    lam: float = 1.0,
    thresholds: str = "",
    refresh: bool = True,
    ladder: str = "",
) -> int:
    """Check the run's parameters by the scheduled pipeline's schema, then claim pending erasure
    requests for this run, resolve them to sample ids, freeze the champion.

    Returns the number of requests to honour (a single output: kfp.local resolves conditions only
    on a task's default output)."""
    from lethe.kfp.params import validate_params
    from lethe.steps.collect import collect_requests as step

    validate_params("scheduled", {
        "dataset": dataset, "model_name": model_name, "max_requests": max_requests,
        "subject_map": subject_map, "batch_size": batch_size, "method": method, "alpha": alpha,
        "cutoff": cutoff, "lam": lam, "thresholds": thresholds, "refresh": refresh, "ladder": ladder})
    result = step(run_id, forget_path=forget.path, model_dir=parent.path, dataset=dataset or None,
                  model_name=model_name or None, max_requests=max_requests or None,
                  subject_map=subject_map or None)
    forget.metadata.update({"num_requests": result.num_requests, "num_samples": result.num_samples})
    if result.parent is not None:
        parent.metadata.update(result.parent.to_dict())
    return result.num_requests


# The data set and the subject map may be in object storage; subjects are matched raw, not hashed.
@step(stores=("registry", "storage"), cache=False, retry=True, display_name="fetch model, resolve forget set")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def prepare_request(
    model: str,
    dataset: str,
    forget_ids: list,
    forget_subjects: list,
    forget_class: int,
    scenario: str,
    subject_map: str,
    forget: Output[Artifact],
    parent: Output[Model],
) -> int:
    """An on-demand order: fetch the model (registry URI, alias or path), resolve what to forget."""
    from lethe.steps.prepare import prepare_request as step

    result = step(model, forget_path=forget.path, model_dir=parent.path, dataset=dataset or None,
                  forget_ids=forget_ids, forget_subjects=forget_subjects,
                  forget_class=None if forget_class < 0 else forget_class, scenario=scenario,
                  subject_map=subject_map or None)
    forget.metadata.update({"num_samples": result.num_samples, "scenario": result.scenario})
    parent.metadata.update(result.parent.to_dict())
    return result.num_samples


# After the gate, before the next champion's importances are refreshed: requests wait for their own
# verdict only (`lethe request settle RUN_ID`). Not retried, as no ledger step is: if it fails, the
# exit task gives the requests back.
@step(stores=("ledger", "storage"), cache=False, retry=False, display_name="settle requests")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def settle_requests(run_id: str) -> str:
    """Settle this run's requests from the outcome its register step recorded (fulfilled, needs review);
    a run without an outcome is left to the exit task. Returns a one-line summary."""
    from lethe.steps.finalize import finalize_requests as step

    return step(run_id, settle_only=True).summary


# Never retried: the exit task runs once whatever happens. Reads the run's outcome, writes certificates.
@step(stores=("ledger", "storage"), cache=False, retry=False, display_name="finalize requests")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def finalize_requests(run_id: str, status: dsl.PipelineTaskFinalStatus, model_name: str = "") -> str:
    """The exit task: settle what the run still holds (a failed run's requests go back to pending), then
    apply the retention policy (`lethe retention apply`)."""
    from lethe.steps.finalize import finalize_requests as step

    result = step(run_id, pipeline_state=status.state, error=status.error_message or "",
                  apply_retention=True, model_name=model_name or None)
    return result.summary
