"""The model zoo: a contract every architecture row keeps, and the rows' own promises. What adding one
costs: tests/unit/test_extension_rows.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from lethe.errors import ModelError
from lethe.models import (
    ARCHITECTURES,
    Architecture,
    build_model,
    forward_stages,
    load_model,
    model_spec,
    register_architecture,
    save_model,
)
from lethe.models.architectures import architecture_help

ROWS = list(ARCHITECTURES.values())
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def samples() -> dict[str, nn.Module]:
    """A small instance of every row (its `sample_kwargs`), 1 input channel, 3 classes, seed 0, in eval
    mode: built once (ViT-B/16 takes seconds), read-only."""
    built = {}
    for row in ROWS:
        torch.manual_seed(0)
        built[row.name] = build_model(row.name, num_classes=3, in_channels=1, **row.sample_kwargs).eval()
    return built


# --- the contract, for every row ------------------------------------------------------------------------

@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
def test_every_row_builds_and_its_stages_compose_to_the_forward_pass(row: Architecture,
                                                                    samples: dict[str, nn.Module]) -> None:
    model = samples[row.name]
    x = torch.randn(2, 1, row.min_image_size, row.min_image_size)
    stages = forward_stages(model)
    names = [name for name, _ in stages]
    assert names and len(set(names)) == len(names)
    with torch.no_grad():
        expected = model(x)
        out = x
        for _, stage in stages:
            out = stage(out)
    assert expected.shape == (2, 3)
    torch.testing.assert_close(out, expected)
    # Every parameter lies in exactly one stage: "dampen from stage k on" can reach all of them.
    owned = [id(p) for _, stage in stages for p in stage.parameters()]
    assert len(owned) == len(set(owned)) and set(owned) == {id(p) for p in model.parameters()}


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
def test_every_rows_defaults_are_valid_and_recorded(row: Architecture, samples: dict[str, nn.Module]) -> None:
    defaults = row.default_kwargs()
    json.dumps(defaults)  # the card is JSON
    assert model_spec(samples[row.name]) == {"arch": row.name, "num_classes": 3, "in_channels": 1,
                                             "arch_kwargs": {**defaults, **row.sample_kwargs}}
    # The defaults themselves build (with 3 channels: the other stem), at the size the row is made for.
    model = build_model(row.name, num_classes=4, in_channels=3).eval()
    assert model_spec(model)["arch_kwargs"] == defaults
    size = row.image_size or row.min_image_size
    if size <= 64:  # ImageNet-sized forward passes cost seconds on a CPU: the builds suffice there
        with torch.no_grad():
            assert model(torch.randn(1, 3, size, size)).shape == (1, 4)
    assert row.name in architecture_help() and row.summary in architecture_help()


# --- what the rows promise beyond the contract -----------------------------------------------------------

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


def test_torchvision_resnet18_other_channels(samples: dict[str, nn.Module]) -> None:
    model = samples["resnet18"]
    assert model.conv1.in_channels == 1 and model.conv1.kernel_size == (7, 7)
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 64)).shape == (1, 3)


def test_vit_b_16_resizes_its_input(samples: dict[str, nn.Module]) -> None:
    model = samples["vit_b_16"]  # image_size 32
    assert model.conv_proj.in_channels == 1
    assert sum(p.numel() for p in model.parameters()) > 80_000_000  # the real ViT-B/16
    with torch.no_grad():
        assert model(torch.randn(1, 1, 28, 28)).shape == (1, 3)  # 28x28 resized to 32x32
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


def test_bad_model_requests() -> None:
    with pytest.raises(ModelError, match="unknown model 'lenet'; expected one of convnet, "):
        build_model("lenet", num_classes=10, in_channels=1)
    with pytest.raises(ModelError, match="bad arguments for convnet"):
        build_model("convnet", num_classes=10, in_channels=1, depth=3)
    with pytest.raises(ModelError, match="at least 2 classes"):
        build_model("convnet", num_classes=1, in_channels=1)


def test_bad_rows_are_refused() -> None:
    with pytest.raises(ModelError, match="registered already"):
        register_architecture(Architecture(name="convnet", summary="again", builder=nn.Linear))
    with pytest.raises(ModelError, match="builder must be a callable or 'module:attribute'"):
        Architecture(name="odd", summary="", builder="no colon here")
    with pytest.raises(ModelError, match="min_image_size"):
        Architecture(name="odd", summary="", builder=nn.Linear, min_image_size=32, image_size=8)
    with pytest.raises(ModelError, match="lower-case"):
        Architecture(name="Bad Name", summary="", builder=nn.Linear)


def test_models_pickle_with_their_spec() -> None:
    import pickle

    model = build_model("resnet18-cifar", num_classes=3, in_channels=1)
    copy = pickle.loads(pickle.dumps(model))  # MLflow's pickle format depends on this
    assert model_spec(copy) == model_spec(model)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), copy.parameters(), strict=True))


def test_a_model_directory_written_before_the_rows_still_loads(tmp_path: Path) -> None:
    """A card as today's main wrote it (arch name and arch_kwargs) rebuilds the same model."""
    torch.manual_seed(0)
    model = build_model("convnet", num_classes=10, in_channels=1, width=16)
    save_model(model, tmp_path / "m", {"dataset": "digits"})
    card = json.loads((tmp_path / "m" / "model.json").read_text())
    assert card["arch"] == "convnet" and card["arch_kwargs"] == {"width": 16, "hidden": 128, "dropout": 0.25}
    loaded, read = load_model(tmp_path / "m")
    assert read.arch == "convnet" and [n for n, _ in forward_stages(loaded)][0] == "block1"
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), loaded.parameters(), strict=True))
