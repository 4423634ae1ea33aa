"""`resnet18` (torchvision's, any number of input channels) and `resnet18-cifar` (the SSD paper's
variant for 32x32 images: a 3x3 stride-1 stem and no max-pool), and the stages of both."""

from __future__ import annotations

from typing import Any

from torch import nn


def _stem(in_channels: int, kernel_size: int, stride: int, padding: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, 64, kernel_size=kernel_size, stride=stride, padding=padding, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")  # torchvision's own init
    return conv


def resnet18(num_classes: int, in_channels: int, **kwargs: Any) -> nn.Module:
    from torchvision.models import resnet18 as torchvision_resnet18

    model = torchvision_resnet18(weights=None, num_classes=num_classes, **kwargs)
    if in_channels != 3:
        model.conv1 = _stem(in_channels, kernel_size=7, stride=2, padding=3)
    return model


def resnet18_cifar(num_classes: int, in_channels: int, **kwargs: Any) -> nn.Module:
    model = resnet18(num_classes=num_classes, in_channels=3, **kwargs)
    model.conv1 = _stem(in_channels, kernel_size=3, stride=1, padding=1)
    model.maxpool = nn.Identity()
    return model


def resnet_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The stem, the four residual layers, the head (pooling and the classifier)."""
    stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
    head = nn.Sequential(model.avgpool, nn.Flatten(1), model.fc)
    return [("stem", stem), ("layer1", model.layer1), ("layer2", model.layer2), ("layer3", model.layer3),
            ("layer4", model.layer4), ("head", head)]
