"""Components for the ladder's rungs after dampening: the decision between rungs, the repair (GPU) and the
retraining of the run's parent (GPU), each a thin wrapper of `lethe.steps`."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from components.image import IMAGE
from components.step import DATA_PASS, step


# Reads the ladder policy, which may be a storage URI (s3://...).
@step(stores=("storage",), cache=True, retry=True, display_name="next rung")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def climb(evaluation: Input[Artifact], forget: Input[Artifact], done: str, ladder: str) -> str:
    """After rung `done`, what the ladder policy (`ladder`: inline YAML or a storage URI; empty: the
    defaults) makes of the gate's verdict: `register`, `repair` or `retrain`."""
    from lethe.steps.ladder import climb as step

    return step(evaluation.path, forget.path, done=done, ladder=ladder or None)


# Reads the retain set (its data may be in the object store).
@step(stores=("storage",), gpu=True, resources=DATA_PASS, cache=True, retry=True, display_name="repair")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def repair(
    candidate: Input[Model],
    parent: Input[Model],
    forget: Input[Artifact],
    evaluation: Input[Artifact],
    dataset: str,
    ladder: str,
    repaired: Output[Model],
) -> str:
    """Repair the dampened candidate with the ladder policy's method for the gate's refusal, within its
    budget (a share of the root recipe's sample-steps); returns the method."""
    from components.adapters import repair_from_spec

    result = repair_from_spec(candidate.path, parent.path, forget.path, evaluation.path, repaired.path,
                              dataset=dataset or None, ladder=ladder or None, progress=False)
    repaired.metadata.update(result.summary)
    return result.method


# Reads the registry (the parent's lineage), the ledger and the subject key (the requests the lineage honours,
# hashed), and trains.
@step(stores=("ledger", "subject_key", "registry", "storage"), gpu=True, resources=DATA_PASS, cache=False,
      retry=False, display_name="retrain (the ladder's last rung)")
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def retrain_rung(
    parent: Input[Model],
    forget: Input[Artifact],
    previous: Input[Model],
    evaluation: Input[Artifact],
    model_name: str,
    candidate: Output[Model],
    retrained_parent: Output[Model],
    retrained_forget: Output[Artifact],
) -> int:
    """Retrain the run's parent without its forget set (and its lineage's); returns how many samples were
    left out. `previous` and `evaluation`: the last rung's candidate and verdict, for the ladder's record."""
    from lethe.steps.retrain_rung import retrain_rung as step

    result = step(parent.path, forget.path, previous.path, evaluation.path, out_dir=candidate.path,
                  parent_out=retrained_parent.path, forget_out=retrained_forget.path,
                  model_name=model_name or None, progress=False)
    candidate.metadata.update(result.to_dict())
    return result.excluded
