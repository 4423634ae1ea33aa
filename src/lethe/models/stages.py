"""A model's forward pass as an ordered list of stages: where dampening may be cut off.

`forward_stages(model)` returns `[(name, module), ...]` such that applying the modules in order
equals `model(x)`. The modules are the model's own submodules (wrapped, never copied), so a
stage shares its parameters with the model. The selection (`lethe.unlearning.select_dampening`)
tries "every layer" and "from stage k on" as the parameters dampening may touch, and runs only
the stages after the cut on a trial, from cached outputs of the unchanged ones before it.

An architecture without a known decomposition is one stage: dampening then acts on every layer.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

Stages = list[tuple[str, nn.Module]]


def _convnet(model: nn.Module) -> Stages:
    features, classifier = model.features, model.classifier
    # Three conv blocks (conv, BN, ReLU and their pooling), the hidden layer, the output layer.
    return [("block1", features[0:4]), ("block2", features[4:8]), ("block3", features[8:12]),
            ("hidden", classifier[0:4]), ("output", classifier[4:])]


def _resnet(model: nn.Module) -> Stages:
    stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
    head = nn.Sequential(model.avgpool, nn.Flatten(1), model.fc)
    return [("stem", stem), ("layer1", model.layer1), ("layer2", model.layer2), ("layer3", model.layer3),
            ("layer4", model.layer4), ("head", head)]


_BY_ARCH: dict[str, Callable[[nn.Module], Stages]] = {
    "convnet": _convnet,
    "resnet18": _resnet,
    "resnet18-cifar": _resnet,
}


def forward_stages(model: nn.Module) -> Stages:
    """The stages of a model built by `lethe.models.build_model`; one stage for any other model."""
    from lethe.models.zoo import model_spec

    spec = model_spec(model) or {}
    split = _BY_ARCH.get(str(spec.get("arch", "")))
    return split(model) if split is not None else [("model", model)]
