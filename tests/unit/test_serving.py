"""Each registered version is an MLflow pyfunc that predicts what lethe predicts (embedded MLflow)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
import yaml

from lethe.data import SampleSet

if TYPE_CHECKING:
    from lethe.registry import Registry


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow database for the module: its first use migrates the schema (seconds)."""
    from lethe.registry import Registry

    home = tmp_path_factory.mktemp("served-home")
    Registry(f"sqlite:///{home / 'mlflow.db'}", "warm-up").champion_version()
    return home


@pytest.fixture
def registry(tracking: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Registry:
    from lethe.registry import Registry

    monkeypatch.setenv("LETHE_ARTIFACTS", str(tracking / "artifacts"))
    uri = f"sqlite:///{tracking / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # what mlflow.pyfunc.load_model resolves models:/ with
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    return Registry(uri, request.node.name.removeprefix("test_")[:40])


def lethe_logits(registry: Registry, images: np.ndarray) -> torch.Tensor:
    model, card = registry.load_model("@champion")
    with torch.no_grad():
        return model(card.normalization.apply(torch.from_numpy(images)))


@pytest.mark.slow
def test_the_champion_loads_as_a_pyfunc_and_predicts_like_lethe(
        registry: Registry, digits_convnet_dir: Path, digits_train: SampleSet, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from lethe.registry.serving import input_shape, synthetic_images

    # Registered from a uv project's directory: MLflow would copy its uv.lock and pyproject.toml.
    for name in ("uv.lock", "pyproject.toml"):
        (tmp_path / name).write_text("# someone else's project\n")
    monkeypatch.chdir(tmp_path)
    info = registry.register_version(digits_convnet_dir, gate={"passed": True}, scenario="base")
    assert info.is_champion
    served = mlflow.pyfunc.load_model(f"models:/{registry.model_name}@champion")
    _, card = registry.load_model("@champion")
    images = synthetic_images(input_shape(card), 5, seed=3)
    images[0] = digits_train.inputs[0].numpy()  # one real digit: a prediction with some confidence
    out = served.predict(images)
    expected = lethe_logits(registry, images)
    torch.testing.assert_close(torch.from_numpy(out["logits"]), expected, atol=1e-4, rtol=0)
    assert out["predicted_class"].tolist() == expected.argmax(1).tolist()
    classes = card.classes or [str(k) for k in range(card.num_classes)]
    assert list(out["label"]) == [classes[i] for i in expected.argmax(1).tolist()]
    np.testing.assert_allclose(out["probabilities"].sum(1), 1.0, atol=1e-5)
    assert out["predicted_class"][0] == int(digits_train.labels[0])
    with pytest.raises(mlflow.exceptions.MlflowException, match="dtype"):
        served.predict(images.astype(np.float32) / 255)  # the signature says uint8, MLflow enforces it

    # The input example is synthetic: seeded noise of the right shape, none of the training images.
    model_dir = Path(registry.client.download_artifacts(info.run_id, "model", str(tmp_path / "all")))
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    assert not (model_dir / "uv.lock").exists() and not (model_dir / "pyproject.toml").exists()
    assert "lethe" not in (model_dir / "requirements.txt").read_text()
    assert mlmodel["flavors"]["python_function"]["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    # lethe's flavour names its files beside MLmodel.
    assert mlmodel["flavors"]["lethe"]["card"] == "model.json" and (model_dir / "model.json").is_file()
    assert mlmodel["flavors"]["lethe"]["weights"] == "model.safetensors"
    example = np.asarray(served.input_example, dtype=np.uint8)
    assert example.shape[1:] == tuple(digits_train.inputs.shape[1:])
    train = digits_train.inputs.numpy().reshape(len(digits_train.inputs), -1)
    assert not (train[None] == example.reshape(len(example), 1, -1)).all(-1).any()
    # lethe's own download takes lethe's files only, verified against the registered manifest.
    lethe_dir = registry.download_model("@champion", tmp_path / "lethe")
    assert {p.name for p in lethe_dir.iterdir()} == {p.name for p in digits_convnet_dir.iterdir()}


def test_a_stray_mlmodel_in_the_model_directory_is_not_what_gets_served(registry: Registry,
                                                                        digits_convnet_dir: Path,
                                                                        tmp_path: Path) -> None:
    # Only lethe's own files are registered: an MLmodel left in the directory neither travels nor
    # replaces the one lethe writes for serving.
    model_dir = tmp_path / "model"
    shutil.copytree(digits_convnet_dir, model_dir)
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    info = registry.register_version(model_dir, gate={"passed": True}, scenario="base")
    served = Path(registry.client.download_artifacts(info.run_id, "model/MLmodel", str(tmp_path / "got")))
    assert yaml.safe_load(served.read_text())["flavors"]["lethe"]["card"] == "model.json"
