"""Components after the gate: settle the run's requests, then refresh the champion's importances, in that
order inside the run's ExitHandler (KFP refuses a task outside it that consumes data from inside, and
kfp.local runs exit tasks last); the exit task (`finalize_requests`) releases what a failed run still
holds and applies the retention policy."""

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
