"""Reference models of a model version for the per-example membership test: K trainings in a
`dsl.ParallelFor` (one GPU each on a cluster), merged into one stored set.

Trained once per root version and reused by every request against it and its descendants; a set
already stored makes every task a no-op.
"""

# No `from __future__ import annotations`: KFP reads the parameters' annotations as types.
from kfp import dsl

from components.audit import merge_reference_models, plan_reference_models, train_reference_model
from components.platform import configure
from lethe.kfp.params import documented

NAME = "lethe-reference-models"


@dsl.pipeline(name=NAME, description="Train a model version's K reference models on random halves of its "
                                     "data (in parallel) and store them with their logits.")
@documented("reference-models")
def reference_models_pipeline(
    model: str = "champion",
    k: int = 8,
    seed: int = 0,
    epochs: int = 0,
    recipe: str = "",
) -> None:
    """K reference models of a version, trained in parallel and stored with their logits."""
    plan = configure(plan_reference_models(model=model, k=k, seed=seed, epochs=epochs, recipe=recipe))
    with dsl.ParallelFor(plan.outputs["Output"], name="reference-models") as index:
        trained = configure(train_reference_model(plan=plan.outputs["plan"], index=index))
    configure(merge_reference_models(plan=plan.outputs["plan"],
                                     references=dsl.Collected(trained.outputs["reference"])))
