"""Full-data importances of a model version, sharded over pods with `dsl.ParallelFor` and merged.

Importances are means of per-batch terms, so shards cut on batch boundaries merge exactly (a
batch-weighted mean). The merged result lands in the importances cache, where the unlearning
runs find it; when it is already there every shard is a no-op.
"""

# No `from __future__ import annotations`: KFP reads the parameters' annotations as types.
from kfp import dsl

from components.platform import configure
from components.training_set_importances import (
    compute_importances_shard,
    fetch_model,
    merge_importances,
    plan_shards,
)
from lethe.kfp.params import documented

NAME = "lethe-importances"


@dsl.pipeline(name=NAME, description="Importances of the whole training set for a model version, "
                                     "sharded and merged into the cache.")
@documented("importances")
def importances_pipeline(
    model: str = "champion",
    dataset: str = "",
    num_shards: int = 4,
    batch_size: int = 1,  # importance batch size; 1 = per sample (lethe.steps.importance_pass)
    method: str = "lfssd",
) -> None:
    """Full-data importances of a model version, sharded over pods and merged into the cache."""
    fetched = configure(fetch_model(model=model))
    plan = configure(plan_shards(num_shards=num_shards))
    with dsl.ParallelFor(plan.output, name="shards") as shard_index:
        shard = configure(compute_importances_shard(model=fetched.outputs["fetched"], dataset=dataset,
                                                    batch_size=batch_size, method=method,
                                                    shard_index=shard_index, num_shards=num_shards))
    configure(merge_importances(model=fetched.outputs["fetched"], dataset=dataset, batch_size=batch_size,
                                method=method, shards=dsl.Collected(shard.outputs["shard"])))
