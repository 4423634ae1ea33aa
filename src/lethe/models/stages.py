"""A model's forward pass as an ordered list of stages: where dampening may be cut off.

`forward_stages(model)` returns `[(name, module), ...]` such that applying the modules in order
equals `model(x)`. The modules are the model's own submodules (wrapped, never copied), so a
stage shares its parameters with the model. The selection (`lethe.unlearning.select_dampening`)
tries "every layer" and "from stage k on" as the parameters dampening may touch, and runs only
the stages after the cut on a trial, from cached outputs of the unchanged ones before it.

Each architecture's row (`lethe.models.architectures`) names its stages; an architecture without
them, and any model `build_model` did not build, is one stage: dampening then acts on every layer.
"""

from __future__ import annotations

from torch import nn

from lethe.models.architectures import ARCHITECTURES
from lethe.models.zoo import model_spec

Stages = list[tuple[str, nn.Module]]


def forward_stages(model: nn.Module) -> Stages:
    """The stages of a model built by `lethe.models.build_model`; one stage for any other model."""
    spec = model_spec(model) or {}
    row = ARCHITECTURES.get(str(spec.get("arch", "")))
    return row.split(model) if row is not None else [("model", model)]
