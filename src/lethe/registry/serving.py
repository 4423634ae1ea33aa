"""Each registered version as an MLflow model that serves without lethe.

Beside lethe's files (model.safetensors + model.json), a version's `model/` holds an MLflow pyfunc
model (MLmodel at its root, so `models:/NAME@champion` loads and `mlflow models serve` serves it):
`served_model.py` (models from code; it imports mlflow, numpy and torch only) and a TorchScript
`model.pt` of the classifier behind the card's normalisation. Input: uint8 images (N, C, H, W);
output: predicted class, label, probabilities, logits. Its input example is a seeded random image,
never a training image (that would be personal data in the registry).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lethe.errors import RegistryError
from lethe.registry.client import mlflow_environ, quiet_mlflow

SERVED_MODEL_CODE = Path(__file__).with_name("served_model.py")
TORCHSCRIPT_ARTIFACT = "torchscript"
_EXAMPLE_SEED = 17
# A traced model must reproduce the eager one on a batch of another size (tracing can freeze shapes).
_TRACE_TOLERANCE = 1e-4


class NormalizedClassifier(nn.Module):
    """uint8 images → the card's normalisation → the classifier's logits (what lethe computes)."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model((images.to(torch.float32) / 255.0 - self.mean) / self.std)


def synthetic_images(shape: tuple[int, int, int], count: int, seed: int = _EXAMPLE_SEED) -> np.ndarray:
    """`count` seeded random uint8 images of `shape` (C, H, W): inputs that describe nobody."""
    return np.random.default_rng(seed).integers(0, 256, size=(count, *shape), dtype=np.uint8)


def input_shape(card: Any) -> tuple[int, int, int]:
    if not card.image_size:
        raise RegistryError("the model card has no image_size: MLflow's model needs the input shape")
    size = list(card.image_size)
    height, width = (size * 2)[:2] if len(size) == 1 else size[:2]
    return int(card.in_channels), int(height), int(width)


def save_served_model(model_dir: str | Path, out_dir: str | Path,
                      flavors: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Write the MLflow pyfunc of lethe model directory `model_dir` into `out_dir` (new or empty);
    `flavors`: more flavours for its MLmodel (name -> configuration), beside `python_function`.

    Returns the relative paths written. The traced model is checked against lethe's own forward
    pass before anything is written.
    """
    import mlflow
    from mlflow.models import Model, ModelSignature
    from mlflow.types import Schema, TensorSpec

    from lethe.models import load_model

    model, card = load_model(model_dir)
    if card.normalization is None:
        raise RegistryError("the model card has no normalization: MLflow's model could not apply it")
    shape = input_shape(card)
    wrapped = NormalizedClassifier(model, card.normalization.mean, card.normalization.std).eval()
    example = synthetic_images(shape, 2)
    check = torch.from_numpy(synthetic_images(shape, 3, seed=_EXAMPLE_SEED + 1))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated (torch.export), supported
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # frozen branches: checked just below
        traced = torch.jit.trace(wrapped, torch.from_numpy(example), check_trace=False)
        expected, got = wrapped(check), traced(check)
    if got.shape != expected.shape or not torch.allclose(got, expected, atol=_TRACE_TOLERANCE, rtol=0):
        raise RegistryError(f"TorchScript of {card.arch} does not reproduce the model "
                            "(tracing froze a shape or a branch): cannot build MLflow's model")
    classes = list(card.classes or [str(i) for i in range(card.num_classes)])
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, *shape))]),
        outputs=Schema([TensorSpec(np.dtype(np.int64), (-1,), "predicted_class"),
                        TensorSpec(np.dtype(object), (-1,), "label"),
                        TensorSpec(np.dtype(np.float32), (-1, card.num_classes), "probabilities"),
                        TensorSpec(np.dtype(np.float32), (-1, card.num_classes), "logits")]))
    requirements = [f"mlflow=={mlflow.__version__}", f"torch=={torch.__version__.split('+')[0]}",
                    f"numpy=={np.__version__}"]
    out_dir = Path(out_dir)
    mlmodel = Model()
    for name, conf in (flavors or {}).items():
        mlmodel.add_flavor(name, **conf)
    with tempfile.TemporaryDirectory(prefix="lethe-served-") as tmp:
        script = Path(tmp) / "model.pt"
        traced.save(str(script))
        # Not the uv project of whatever directory lethe runs in: the requirements are the ones above.
        with quiet_mlflow(), mlflow_environ(MLFLOW_UV_AUTO_DETECT="false"):
            mlflow.pyfunc.save_model(
                path=str(out_dir), python_model=str(SERVED_MODEL_CODE),
                artifacts={TORCHSCRIPT_ARTIFACT: str(script)}, model_config={"classes": classes},
                signature=signature, input_example=example, pip_requirements=requirements,
                mlflow_model=mlmodel)
    return sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file())

