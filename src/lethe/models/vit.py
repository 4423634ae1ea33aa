"""torchvision's ViT-B/16 (no pretrained weights), resizing inputs to the size it was built for.

A module-level class so that pickled models (MLflow's pickle format) can be loaded again.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from lethe.errors import ModelError

PATCH = 16
HIDDEN = 768


class ResizingViT(VisionTransformer):
    """VisionTransformer whose forward() resizes inputs of another size (e.g. CIFAR's 32x32 to 224)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                                          align_corners=False, antialias=True)
        return super().forward(x)


def vit_b_16(num_classes: int, in_channels: int, *, image_size: int = 224, **kwargs: Any) -> nn.Module:
    if image_size % PATCH:
        raise ModelError(f"vit_b_16 needs an image size divisible by {PATCH}, got {image_size}")
    model = ResizingViT(image_size=image_size, patch_size=PATCH, num_layers=12, num_heads=12,
                        hidden_dim=HIDDEN, mlp_dim=3072, num_classes=num_classes, **kwargs)
    if in_channels != 3:
        model.conv_proj = nn.Conv2d(in_channels, HIDDEN, kernel_size=PATCH, stride=PATCH)
        # torchvision's own initialisation of the patch projection
        nn.init.trunc_normal_(model.conv_proj.weight, std=math.sqrt(1 / (in_channels * PATCH * PATCH)))
        nn.init.zeros_(model.conv_proj.bias)
    return model
