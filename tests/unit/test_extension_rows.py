"""What a new architecture and a new data set cost: a module each and one row each. Here both are
defined and registered in the test alone, and run through everything that names models and data:
`load_dataset`, `build_model`, `forward_stages`, the model card, `lethe train` and its help."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from lethe.cli import main
from lethe.data import DatasetCard, LoadOptions, Normalization, SampleSet, load_dataset
from lethe.data.catalog import Dataset, register_dataset, unregister_dataset
from lethe.errors import DataError, ModelError
from lethe.models import (
    Architecture,
    build_model,
    forward_stages,
    load_model,
    model_spec,
    register_architecture,
    unregister_architecture,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# --- the toy architecture's module -------------------------------------------------------------------------

class TinyMLP(nn.Module):
    def __init__(self, *, num_classes: int, in_channels: int, hidden: int = 8) -> None:
        super().__init__()
        self.flatten = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.body = nn.Sequential(nn.Linear(in_channels * 16, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.flatten(x)))


def tiny_mlp_stages(model: TinyMLP) -> list[tuple[str, nn.Module]]:
    return [("body", nn.Sequential(model.flatten, model.body)), ("head", model.head)]


# --- the toy data set's module: two classes of blobs, each sample from one of three sites ----------------

BLOBS = DatasetCard(num_classes=2, in_channels=1, image_size=(6, 6), normalization=Normalization.uniform(1),
                    classes=("dark", "bright"))


def load_blobs(split: str, options: LoadOptions) -> SampleSet:
    n = 40 if split == "train" else 12
    generator = torch.Generator().manual_seed(0 if split == "train" else 1)
    labels = torch.arange(n) % 2
    noise = torch.randint(0, 60, (n, 1, 6, 6), generator=generator)
    inputs = (noise + labels.view(-1, 1, 1, 1) * 180).to(torch.uint8)
    card = options.card
    return SampleSet(name=options.name, split=split, ids=[f"blobs/{split}/{i}" for i in range(n)],
                     inputs=inputs, labels=labels, num_classes=card.num_classes,
                     normalization=card.normalization, classes=card.classes,
                     metadata={"site": [f"site-{i % 3}" for i in range(n)]})


# --- the two rows ------------------------------------------------------------------------------------------

@pytest.fixture
def toy_rows() -> Iterator[tuple[Architecture, Dataset]]:
    architecture = register_architecture(Architecture(
        name="tiny-mlp", summary="a toy", builder=TinyMLP, stages=tiny_mlp_stages, min_image_size=4))
    dataset = register_dataset(Dataset(name="blobs", summary="toy blobs", loader=load_blobs, card=BLOBS,
                                       metadata=("site",)))
    try:
        yield architecture, dataset
    finally:
        unregister_architecture(architecture.name)
        unregister_dataset(dataset.name)


def test_a_new_architecture_and_data_set_are_a_module_and_a_row_each(toy_rows, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    train = load_dataset("blobs", "train")
    assert train.card == BLOBS and train.ids_where("site", "site-1")[:2] == ["blobs/train/1", "blobs/train/4"]
    torch.manual_seed(0)
    model = build_model("tiny-mlp", num_classes=train.num_classes, in_channels=train.in_channels)
    assert model_spec(model)["arch_kwargs"] == {"hidden": 8}
    assert [name for name, _ in forward_stages(model)] == ["body", "head"]

    # The CLI takes both by name, and its help lists them, with no edit anywhere else.
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "tiny-mlp (a toy; images 4x4 and up; CPU)" in help_text
    assert "blobs (toy blobs; 2 classes, 1x6x6)" in help_text
    out = tmp_path / "model"
    assert main(["train", "--dataset", "blobs", "--model", "tiny-mlp", "--epochs", "3", "--out", str(out),
                 "--lr", "0.05", "--batch-size", "8", "--device", "cpu", "--no-progress"]) == 0
    assert "tiny-mlp on blobs (40 samples)" in capsys.readouterr().out
    loaded, card = load_model(out)  # the card rebuilds it through the row
    assert card.arch == "tiny-mlp" and card.dataset == "blobs" and isinstance(loaded, TinyMLP)
    assert card.dataset_fingerprint == train.fingerprint()
    assert [name for name, _ in forward_stages(loaded)] == ["body", "head"]


def test_rows_leave_no_trace_once_removed(toy_rows) -> None:
    torch.manual_seed(0)
    model = build_model("tiny-mlp", num_classes=2, in_channels=1)
    unregister_architecture("tiny-mlp")
    unregister_dataset("blobs")
    with pytest.raises(ModelError, match="unknown model 'tiny-mlp'"):
        build_model("tiny-mlp", num_classes=2, in_channels=1)
    assert forward_stages(model) == [("model", model)]  # an unknown architecture is one stage
    with pytest.raises(DataError, match="unknown dataset 'blobs'"):
        load_dataset("blobs", "train")
