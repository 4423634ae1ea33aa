"""The ladder's last rung: retrain the run's parent without its forget set, when the policy allows it.

The run's forget spec names the parent version and the samples; `lethe.steps.retrain.retrain` trains the
root's recipe without them (and without everything the lineage forgot). The retrained candidate carries
the ladder's history (`ladder.json`): the rungs before it, each with the gate's verdict, then this one.
"""

from __future__ import annotations

from pathlib import Path

from lethe.forgetting.spec import ForgetSpec
from lethe.steps.ladder import extend_history
from lethe.steps.results import RetrainResult


def retrain_rung(
    parent_dir: str | Path,
    forget_path: str | Path,
    previous_candidate: str | Path,
    previous_evaluation: str | Path,
    *,
    out_dir: str | Path,
    parent_out: str | Path,
    forget_out: str | Path,
    model_name: str | None = None,
    epochs: int | None = None,
    device: str | None = None,
    progress: bool = True,
    tracking_uri: str | None = None,
) -> RetrainResult:
    """Retrain the run's parent (its registered version, else the model directory `parent_dir`) without
    the run's forget set into `out_dir`; `parent_out`, `forget_out`: as `retrain` writes them."""
    from lethe.steps.retrain import retrain

    spec = ForgetSpec.load(forget_path)
    name, version = spec.parent.get("name") or model_name, spec.parent.get("version")
    model = f"models:/{name}/{version}" if name and version else str(parent_dir)
    result = retrain(model, out_dir=out_dir, parent_dir=parent_out, forget_path=forget_out,
                     exclude_ids=spec.sample_ids, exclude_class=spec.forget_class,
                     request_ids=spec.request_ids, epochs=epochs, device=device, progress=progress,
                     tracking_uri=tracking_uri, model_name=name or None)
    extend_history(previous_candidate, previous_evaluation,
                   {"rung": "retrain", "epochs": result.epochs, "excluded": result.excluded,
                    "seconds": result.seconds, "share_of_recipe": 1.0}, out_dir)
    return result
