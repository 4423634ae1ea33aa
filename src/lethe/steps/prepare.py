"""prepare-request: an on-demand order (a model and what to forget) turned into the run's forget spec.

A model is named by a registry reference or a local model directory (`lethe.registry.fetch`). The
scenario's row says which forget-set arguments it takes; anything else is refused before the model
is fetched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lethe.data import subject_map as subjects_of
from lethe.errors import PipelineError
from lethe.forgetting.scenarios import DEFAULT_SCENARIO, given_inputs
from lethe.forgetting.scenarios import scenario as scenario_row
from lethe.forgetting.spec import ForgetSpec
from lethe.models import read_card
from lethe.registry.fetch import fetch_model
from lethe.steps.results import PreparedForgetSet
from lethe.steps.training_data import dataset_for, training_data


def prepare_request(
    model: str,
    *,
    forget_path: str | Path,
    model_dir: str | Path,
    dataset: str | None = None,
    forget_ids: Sequence[str] = (),
    forget_subjects: Sequence[str] = (),
    forget_class: int | None = None,
    scenario: str = DEFAULT_SCENARIO,
    subject_map: str | None = None,
    tracking_uri: str | None = None,
    model_name: str | None = None,
) -> PreparedForgetSet:
    """Fetch `model` into `model_dir` and write the forget set (sample ids or a class) to `forget_path`.

    Subjects are resolved to their sample ids here and never written anywhere.
    """
    row = scenario_row(scenario, error=PipelineError)
    row.refuse_inputs(given_inputs(forget_ids=forget_ids, forget_subjects=forget_subjects,
                                   forget_class=forget_class), error=PipelineError)
    parent = fetch_model(model, model_dir, tracking_uri=tracking_uri, model_name=model_name)
    card = read_card(model_dir)
    name = dataset_for(card, dataset)
    train = training_data(card, name)
    mapping = subjects_of(train, subject_map) if forget_subjects else None
    split = row.resolve(train, ids=forget_ids, subjects=forget_subjects, subjects_map=mapping,
                        forget_class=forget_class)
    spec = ForgetSpec(scenario=row.name, dataset=name,
                      sample_ids=[] if row.forgets_class else list(split.forget.ids),
                      forget_class=forget_class, parent=parent.to_dict(), num_samples=len(split.forget),
                      num_subjects=len(set(forget_subjects)))
    spec.save(forget_path)
    return PreparedForgetSet(num_samples=spec.num_samples, scenario=row.name, parent=parent, dataset=name)
