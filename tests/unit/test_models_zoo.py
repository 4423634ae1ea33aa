"""The model zoo: every architecture builds for the shapes lethe feeds it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lethe.errors import ModelError
from lethe.models import ARCHS, build_model, model_spec


@pytest.mark.parametrize(("channels", "size"), [(1, 8), (1, 28), (3, 32)])
def test_convnet_any_size(channels: int, size: int) -> None:
    model = build_model("convnet", num_classes=7, in_channels=channels).eval()
    with torch.no_grad():
        assert model(torch.randn(2, channels, size, size)).shape == (2, 7)


def test_resnet18_cifar_has_the_ssd_stem() -> None:
    model = build_model("resnet18-cifar", num_classes=20, in_channels=3)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 20)


def test_torchvision_resnet18_other_channels() -> None:
    model = build_model("resnet18", num_classes=5, in_channels=1).eval()
    assert model.conv1.in_channels == 1 and model.conv1.kernel_size == (7, 7)
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 64)).shape == (1, 5)


def test_vit_b_16_resizes_its_input() -> None:
    model = build_model("vit_b_16", num_classes=10, in_channels=1, image_size=32).eval()
    assert model.conv_proj.in_channels == 1
    assert sum(p.numel() for p in model.parameters()) > 80_000_000  # the real ViT-B/16
    with torch.no_grad():
        assert model(torch.randn(1, 1, 28, 28)).shape == (1, 10)  # 28x28 resized to 32x32
    with pytest.raises(ModelError, match="divisible by 16"):
        build_model("vit_b_16", num_classes=10, in_channels=3, image_size=30)


def test_spec_is_recorded_and_seeding_reproduces_weights() -> None:
    torch.manual_seed(3)
    a = build_model("convnet", num_classes=4, in_channels=3, width=8)
    torch.manual_seed(3)
    b = build_model("convnet", num_classes=4, in_channels=3, width=8)
    kwargs = {"width": 8, "hidden": 128, "dropout": 0.25}  # defaults recorded too
    expected = {"arch": "convnet", "num_classes": 4, "in_channels": 3, "arch_kwargs": kwargs}
    assert model_spec(a) == expected
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert set(ARCHS) == {"convnet", "resnet18-cifar", "resnet18", "vit_b_16"}


def test_bad_model_requests() -> None:
    with pytest.raises(ModelError, match="unknown model 'lenet'"):
        build_model("lenet", num_classes=10, in_channels=1)
    with pytest.raises(ModelError, match="bad arguments for convnet"):
        build_model("convnet", num_classes=10, in_channels=1, depth=3)
    with pytest.raises(ModelError, match="at least 2 classes"):
        build_model("convnet", num_classes=1, in_channels=1)


def test_models_pickle_with_their_spec() -> None:
    import pickle

    model = build_model("resnet18-cifar", num_classes=3, in_channels=1)
    copy = pickle.loads(pickle.dumps(model))  # MLflow's pickle format depends on this
    assert model_spec(copy) == model_spec(model)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), copy.parameters(), strict=True))
