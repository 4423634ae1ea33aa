"""Components for full-data importances: cache-aware, or sharded over pods and merged exactly."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from components.image import IMAGE
from components.step import DATA_PASS, step


@step(stores=("registry",), cache=False, retry=True, display_name="fetch model")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def fetch_model(model: str, fetched: Output[Model]) -> str:
    """A model (registry URI such as models:/NAME@champion, alias, or model directory) as an artifact."""
    from lethe.steps import fetch_model as step

    result = step(model, fetched.path)
    fetched.metadata.update(result.to_dict())
    return result.fingerprint


# Retried: the cache entry it writes is keyed by content (model, data set, method, batch size).
@step(stores=("storage",), gpu=True, resources=DATA_PASS, cache=False, retry=True,
      display_name="importances of D (cached)")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def compute_importances(
    model: Input[Model],
    dataset: str,
    batch_size: int,
    method: str,
    importances: Output[Artifact],
) -> bool:
    """Importances of the whole training set for `model`, from the cache when there (True)."""
    from lethe.steps.full_importances import compute_importances as step

    result = step(model.path, dataset or None, out_path=importances.path, batch_size=batch_size,
                  method=method)
    importances.metadata.update(result.to_dict())
    return result.cached


@step(cache=True, retry=True, display_name="plan shards")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def plan_shards(num_shards: int) -> list[int]:
    """The shard indices 0..K-1 for a ParallelFor."""
    from lethe.steps.full_importances import plan_shards as step

    return step(num_shards)


@step(stores=("storage",), gpu=True, resources=DATA_PASS, cache=True, retry=True,
      display_name="importances shard")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def compute_importances_shard(
    model: Input[Model],
    dataset: str,
    batch_size: int,
    method: str,
    shard_index: int,
    num_shards: int,
    shard: Output[Artifact],
) -> bool:
    """Importances over shard k of K of the training set (whole batches), or nothing when cached."""
    from lethe.steps.full_importances import compute_importances_shard as step

    result = step(model.path, dataset or None, out_path=shard.path, shard_index=shard_index,
                  num_shards=num_shards, batch_size=batch_size, method=method)
    shard.metadata.update(result.to_dict())
    return result.cached


@step(stores=("storage",), cache=False, retry=True, display_name="merge into the cache")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def merge_importances(
    model: Input[Model],
    dataset: str,
    batch_size: int,
    method: str,
    shards: Input[list[Artifact]],
    importances: Output[Artifact],
) -> bool:
    """Merge the shards (a batch-weighted mean, exact) and store the result in the cache."""
    from lethe.steps.full_importances import merge_importances as step

    result = step(model.path, dataset or None, [s.path for s in shards], out_path=importances.path,
                  batch_size=batch_size, method=method)
    importances.metadata.update(result.to_dict())
    return result.cached


@step(stores=("storage",), gpu=True, resources=DATA_PASS, cache=False, retry=True,
      display_name="importances of the new champion")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def refresh_importances(model: Input[Model], dataset: str, batch_size: int, method: str) -> bool:
    """Fill the cache for a new champion, so the next run starts from its importances."""
    from lethe.steps.full_importances import refresh_importances as step

    return step(model.path, dataset or None, batch_size=batch_size, method=method).cached
