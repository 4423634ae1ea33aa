"""Full-data importances of a model version, sharded over pods with `dsl.ParallelFor` and merged.

Importances are means of per-batch terms, so shards cut on batch boundaries merge exactly (a
batch-weighted mean). The merged result lands in the importances cache, where the unlearning
runs find it; when it is already there every shard is a no-op.
"""

# No `from __future__ import annotations`: KFP reads the parameters' annotations as types.
from kfp import dsl

from components import compute_importances_shard, fetch_model, merge_importances, plan_shards
from components.platform import configure

NAME = "lethe-importances"


@dsl.pipeline(name=NAME, description="Importances of the whole training set for a model version, "
                                     "sharded and merged into the cache.")
def importances_pipeline(
    model: str = "champion",
    dataset: str = "",
    num_shards: int = 4,
    batch_size: int = 1,  # importance batch size; 1 = per sample (lethe.steps.importance_pass)
    method: str = "lfssd",
) -> None:
    fetched = fetch_model(model=model)
    configure(fetched, needs="registry", cache=False, retry=True, display_name="fetch model")
    plan = plan_shards(num_shards=num_shards)
    configure(plan, needs="none", cache=True, display_name="plan shards")
    with dsl.ParallelFor(plan.output, name="shards") as shard_index:
        shard = compute_importances_shard(model=fetched.outputs["fetched"], dataset=dataset,
                                          batch_size=batch_size, method=method, shard_index=shard_index,
                                          num_shards=num_shards)
        configure(shard, needs="storage", cache=True, display_name="importances shard")
    merged = merge_importances(model=fetched.outputs["fetched"], dataset=dataset, batch_size=batch_size,
                               method=method, shards=dsl.Collected(shard.outputs["shard"]))
    configure(merged, needs="storage", cache=False, retry=True, display_name="merge into the cache")
