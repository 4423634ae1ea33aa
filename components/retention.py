"""Components after the gate: settle the run's requests, refresh the champion's importances, apply the
retention policy. They run in that order inside the run's ExitHandler (KFP refuses a task outside it that
consumes data from inside, and kfp.local runs exit tasks last), so requests are settled before the refresh
starts; the exit task (`finalize_requests`) only releases what a failed run still holds."""

from kfp import dsl

from components.image import IMAGE
from components.step import DATA_PASS, step


# Never retried (a ledger step); it runs after the gate even when a step before it failed
# (`ignore_upstream_failure`): the outcome marker says what there is to settle.
@step(stores=("ledger", "registry", "storage"), cache=False, retry=False, display_name="settle requests")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def settle_requests(run_id: str) -> str:
    """Settle this run's requests from the outcome the register step recorded (fulfilled, needs review,
    or back to pending when there is none)."""
    from lethe.steps.finalize import finalize_requests as step

    return step(run_id, settle_only=True).summary


@step(stores=("registry", "storage"), gpu=True, resources=DATA_PASS, cache=False, retry=True,
      display_name="importances of the champion")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def refresh_champion_importances(dataset: str, model_name: str, batch_size: int, method: str) -> bool:
    """Fill the cache for the champion as the registry has it now (after the requests were settled)."""
    from lethe.steps.full_importances import refresh_importances as step

    model = f"models:/{model_name}@champion" if model_name else "champion"
    return step(model, dataset or None, batch_size=batch_size, method=method).cached


# Never retried (a ledger step); idempotent, so the next run finishes what a failed one left.
@step(stores=("ledger", "registry", "storage"), cache=False, retry=False, display_name="apply retention")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def apply_retention(model_name: str) -> str:
    """Retire the copies of erased people's data that the retention policy says are due."""
    from lethe.steps.retention import apply_retention_policy as step

    return step(model_name=model_name or None).summary
