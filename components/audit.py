"""Components for the audit: reference models trained in parallel (one GPU each) and merged; the retrain
remedy (a GPU training) and its registration."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from components.image import IMAGE
from components.step import DATA_PASS, step


# Reads the registry and, for a retrained root, the ledger and the subject map (what it was trained without).
@step(stores=("ledger", "subject_key", "registry", "storage"), cache=False, retry=False,
      display_name="plan reference models")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def plan_reference_models(model: str, k: int, seed: int, epochs: int, recipe: str,
                          plan: Output[Artifact]) -> list:
    """Find the version's recipe through its lineage and fix the halves; returns the indices 0..K-1."""
    from lethe.steps.audit import plan_reference_models as step

    return step(model, plan.path, k=k, seed=seed, epochs=epochs or None, recipe=recipe or None)


# Reads the data set (s3:// on a cluster) and the stored set (nothing to train when it is there).
@step(stores=("storage",), gpu=True, resources=DATA_PASS, cache=True, retry=True,
      display_name="train a reference model")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_reference_model(plan: Input[Artifact], index: int, reference: Output[Model]) -> None:
    """Train reference model `index` on its half (nothing when the set is already stored)."""
    from lethe.steps.audit import train_reference_model as step

    step(plan.path, index, reference.path, progress=False)
    reference.metadata["index"] = index


@step(stores=("storage",), cache=False, retry=False, display_name="logits, store the set")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def merge_reference_models(plan: Input[Artifact], references: Input[list[Model]],
                           stored: Output[Artifact]) -> str:
    """Every reference model's logits, stored with the models under the artifacts root; returns the URI."""
    from lethe.steps.audit import merge_reference_models as step

    result = step(plan.path, [r.path for r in references], progress=False)
    stored.metadata.update(result.to_dict())
    with open(stored.path, "w") as handle:
        handle.write(result.references.uri + "\n")
    return result.references.uri


# Reads the registry, the ledger and the subject map (the lineage's requests, hashed), and trains: the
# one data pass that holds the ledger's credentials, so never retried or cached.
@step(stores=("ledger", "subject_key", "registry", "storage"), gpu=True, resources=DATA_PASS, cache=False,
      retry=False,
      display_name="retrain without the forget set")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def retrain(
    model: str,
    forget_ids: list,
    forget_subjects: list,
    forget_class: int,
    subject_map: str,
    epochs: int,
    recipe: str,
    model_name: str,
    candidate: Output[Model],
    parent: Output[Model],
    forget: Output[Artifact],
) -> int:
    """Train the version's recipe without its lineage's and this request's samples; returns how many."""
    from lethe.steps.retrain import retrain as step

    result = step(model, out_dir=candidate.path, parent_dir=parent.path, forget_path=forget.path,
                  exclude_ids=forget_ids, exclude_subjects=forget_subjects,
                  exclude_class=forget_class if forget_class >= 0 else None,
                  subjects_file=subject_map or None, epochs=epochs or None, recipe=recipe or None,
                  model_name=model_name or None, progress=False)
    candidate.metadata.update(result.to_dict())
    return result.excluded


# Writes the run's outcome; a promoted version retires the references of the root it replaced.
@step(stores=("registry", "storage"), cache=False, retry=False, display_name="register + gate")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register_retrained(
    candidate: Input[Model],
    evaluation: Input[Artifact],
    forget: Input[Artifact],
    run_id: str,
    model_name: str,
    registered: Output[Artifact],
) -> str:
    """Register the retrained candidate behind the gate, tagged lethe.remedy=retrain; returns the decision."""
    from lethe.steps.retrain import register_retrained as step

    result = step(candidate.path, evaluation.path, forget.path, run_id=run_id, model_name=model_name or None)
    registered.metadata.update(result.to_dict())
    with open(registered.path, "w") as handle:
        handle.write(result.version + "\n")
    return result.decision
