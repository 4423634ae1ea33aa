"""Model directories: round trip, and every checkpoint that must be refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lethe.data import Normalization, SampleSet
from lethe.errors import ModelError
from lethe.models import build_model, load_model, read_card, save_model
from lethe.unlearning import model_fingerprint


def small(seed: int = 0, **kwargs: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("convnet", num_classes=10, in_channels=1, width=kwargs.get("width", 4))


def test_round_trip(tmp_path: Path, digits_test: SampleSet) -> None:
    model = small()
    model.train()(torch.randn(8, 1, 8, 8))  # move the BatchNorm running statistics off their defaults
    model.eval()
    card = save_model(model, tmp_path / "m", {"dataset": "digits", "normalization": digits_test.normalization,
                                              "note": "kept"})
    assert card.fingerprint == model_fingerprint(model) and card.arch_kwargs["width"] == 4
    raw = json.loads((tmp_path / "m" / "model.json").read_text())
    assert raw["arch"] == "convnet" and raw["in_channels"] == 1 and raw["num_classes"] == 10
    assert raw["normalization"] == {"mean": [0.3059], "std": [0.3763]} and raw["note"] == "kept"
    loaded, loaded_card = load_model(tmp_path / "m")
    assert loaded_card == card and loaded_card.normalization == Normalization((0.3059,), (0.3763,))
    assert not loaded.training
    x = next(iter(digits_test.batches(32, with_labels=False)))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))  # buffers travelled too
    assert read_card(tmp_path / "m" / "model.json") == card


def test_shared_fixture_is_a_valid_model_dir(digits_convnet_dir: Path, digits_convnet: tuple) -> None:
    model, card = digits_convnet
    assert card.dataset == "digits" and card.arch == "convnet"
    assert model_fingerprint(model) == card.fingerprint
    assert (digits_convnet_dir / "train.json").is_file()


def test_checkpoint_of_another_architecture_refused(tmp_path: Path) -> None:
    save_model(small(), tmp_path / "m")
    save_model(small(width=8), tmp_path / "other")
    shutil.copy(tmp_path / "other" / "model.safetensors", tmp_path / "m" / "model.safetensors")
    with pytest.raises(ModelError, match="does not match architecture convnet: .*shape mismatch"):
        load_model(tmp_path / "m")


def test_missing_and_unexpected_tensors_refused(tmp_path: Path) -> None:
    save_model(small(), tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    state = load_file(str(weights))
    state["extra.weight"] = state.pop("classifier.4.weight")
    save_file(state, str(weights))
    with pytest.raises(ModelError, match="1 missing tensor.*classifier.4.weight.*1 unexpected"):
        load_model(tmp_path / "m")


def test_changed_weights_fail_the_fingerprint(tmp_path: Path) -> None:
    save_model(small(), tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    state = load_file(str(weights))
    state["classifier.4.bias"] = state["classifier.4.bias"] + 1e-3
    save_file(state, str(weights))
    with pytest.raises(ModelError, match="fingerprint"):
        load_model(tmp_path / "m")


def test_broken_directories_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no model directory"):
        load_model(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no model.json"):
        load_model(tmp_path / "empty")
    save_model(small(), tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{broken")
    with pytest.raises(ModelError, match="corrupt checkpoint"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="no model.safetensors"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot read"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / "model.json").write_text(json.dumps({"format": "lethe-model/1", "arch": "convnet"}))
    with pytest.raises(ModelError, match=r"not a lethe model card \(lethe-model/1\): field"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / "model.json").write_text(json.dumps({"arch": "convnet"}))
    with pytest.raises(ModelError, match="not a lethe model card"):
        load_model(tmp_path / "m")


def test_saving_needs_an_architecture(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="without arch"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "m")
    card = save_model(torch.nn.Linear(2, 2), tmp_path / "m",
                      {"arch": "convnet", "num_classes": 2, "in_channels": 1})
    assert card.arch == "convnet"
