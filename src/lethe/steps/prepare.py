"""Fetching a model version, and turning an on-demand order into a forget set.

A model is named by a registry reference (`models:/NAME/VERSION`, `models:/NAME@ALIAS`, an alias
such as `champion`, a version number) or by a local model directory.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from lethe.data import resolve_forget_set
from lethe.data import subject_map as subjects_of
from lethe.errors import PipelineError
from lethe.models import is_model_dir, read_card
from lethe.steps.forget_spec import ForgetSpec
from lethe.steps.layout import SCENARIOS
from lethe.steps.results import FetchedModel, PreparedRequest
from lethe.steps.training_data import dataset_for, training_data


def fetch_model(model: str, dest_dir: str | Path, *, tracking_uri: str | None = None,
                model_name: str | None = None) -> FetchedModel:
    """Copy the model directory of `model` into `dest_dir`; returns its source, name, version, fingerprint."""
    dest = Path(dest_dir)
    if is_model_dir(model):
        if Path(model).resolve() != dest.resolve():
            shutil.copytree(model, dest, dirs_exist_ok=True)
        return FetchedModel(source="directory", name="", version="", fingerprint=read_card(dest).fingerprint)
    from lethe.registry import Registry

    registry = Registry(tracking_uri, model_name)
    info = registry.resolve(model)
    Registry(tracking_uri, info.name).download_model(info.version, dest)
    return FetchedModel(source="registry", name=info.name, version=info.version,
                        fingerprint=read_card(dest).fingerprint)


def prepare_request(
    model: str,
    *,
    forget_path: str | Path,
    model_dir: str | Path,
    dataset: str | None = None,
    forget_ids: Sequence[str] = (),
    forget_subjects: Sequence[str] = (),
    forget_class: int | None = None,
    scenario: str = "subject",
    subject_map: str | None = None,
    tracking_uri: str | None = None,
    model_name: str | None = None,
) -> PreparedRequest:
    """Fetch `model` into `model_dir` and write the forget set (sample ids or a class) to `forget_path`.

    Subjects are resolved to their sample ids here and never written anywhere.
    """
    if scenario not in SCENARIOS:
        raise PipelineError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")
    if scenario == "class" and (forget_class is None or forget_ids or forget_subjects):
        raise PipelineError("the class scenario takes a class (forget_class) and nothing else")
    if scenario == "subject" and forget_class is not None:
        raise PipelineError("the subject scenario forgets sample ids or subjects, not a class")
    parent = fetch_model(model, model_dir, tracking_uri=tracking_uri, model_name=model_name)
    card = read_card(model_dir)
    name = dataset_for(card, dataset)
    train = training_data(card, name)
    mapping = subjects_of(train, subject_map) if forget_subjects else None
    split = resolve_forget_set(train, ids=forget_ids, subjects=forget_subjects, subjects_map=mapping,
                               forget_class=forget_class)
    spec = ForgetSpec(scenario=scenario, dataset=name,
                      sample_ids=[] if scenario == "class" else list(split.forget.ids),
                      forget_class=forget_class, parent=parent.to_dict(), num_samples=len(split.forget),
                      num_subjects=len(set(forget_subjects)))
    spec.save(forget_path)
    return PreparedRequest(num_samples=spec.num_samples, scenario=scenario, parent=parent, dataset=name)
