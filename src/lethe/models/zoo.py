"""The model zoo: `build_model(arch, num_classes=, in_channels=, **kwargs)`.

Every model built here carries `lethe_spec` (arch, num_classes, in_channels, arch_kwargs), which
`save_model` writes into the model card so that any machine can rebuild it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from lethe.errors import ModelError
from lethe.models.convnet import ConvNet

SPEC_ATTRIBUTE = "lethe_spec"


def _convnet(num_classes: int, in_channels: int, **kwargs: Any) -> nn.Module:
    return ConvNet(num_classes=num_classes, in_channels=in_channels, **kwargs)


def _resnet18(num_classes: int, in_channels: int, **kwargs: Any) -> nn.Module:
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=num_classes, **kwargs)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model


def _resnet18_cifar(num_classes: int, in_channels: int, **kwargs: Any) -> nn.Module:
    """ResNet18 for 32x32 images as in the SSD paper: a 3x3 stride-1 stem and no max-pool."""
    model = _resnet18(num_classes, 3, **kwargs)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return model


def _vit_b_16(num_classes: int, in_channels: int, **kwargs: Any) -> nn.Module:
    from lethe.models.vit import vit_b_16

    return vit_b_16(num_classes, in_channels, **kwargs)


ARCHS: dict[str, Callable[..., nn.Module]] = {
    "convnet": _convnet,
    "resnet18-cifar": _resnet18_cifar,
    "resnet18": _resnet18,
    "vit_b_16": _vit_b_16,
}


def build_model(arch: str, *, num_classes: int, in_channels: int, **kwargs: Any) -> nn.Module:
    """A freshly initialised model (seed torch beforehand for reproducible weights)."""
    if arch not in ARCHS:
        raise ModelError(f"unknown model {arch!r}; expected one of {', '.join(ARCHS)} or a model directory")
    if num_classes < 2:
        raise ModelError(f"a classifier needs at least 2 classes, got {num_classes}")
    if in_channels < 1:
        raise ModelError(f"in_channels must be positive, got {in_channels}")
    try:
        model = ARCHS[arch](num_classes, in_channels, **kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:  # an argument it does not take, or a bad value
        raise ModelError(f"bad arguments for {arch}: {exc}") from exc
    # Record the defaults too: a model saved today rebuilds the same if a default changes later.
    arch_kwargs = {**_defaults(arch), **kwargs}
    setattr(model, SPEC_ATTRIBUTE, {"arch": arch, "num_classes": int(num_classes),
                                    "in_channels": int(in_channels), "arch_kwargs": arch_kwargs})
    return model


def _defaults(arch: str) -> dict[str, Any]:
    """The keyword defaults of an architecture's constructor (JSON-able ones only)."""
    if arch == "convnet":
        target: Callable[..., Any] = ConvNet.__init__
    elif arch == "vit_b_16":
        from lethe.models.vit import vit_b_16 as target
    else:
        return {}
    return {name: p.default for name, p in inspect.signature(target).parameters.items()
            if p.kind is p.KEYWORD_ONLY and p.default is not p.empty
            and isinstance(p.default, (int, float, str, bool))}


def model_spec(model: nn.Module) -> dict[str, Any] | None:
    """What `build_model` was called with, if the model came from it."""
    spec = getattr(model, SPEC_ATTRIBUTE, None)
    return dict(spec) if isinstance(spec, dict) else None
