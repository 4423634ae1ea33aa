"""The MLflow pyfunc of a registered version; MLflow copies this file into the model ("models from code").

MLflow runs this file when it loads the model, wherever it is served: it imports only mlflow, numpy
and torch, never lethe (keep it so). The TorchScript artifact holds the classifier with its card's
normalisation, so the input is what lethe's data sets store: uint8 images, shape (N, C, H, W).
The output has, per image, the predicted class index, its label, the class probabilities and the logits.
lethe never imports this module: `lethe.registry.serving` hands its path to MLflow.
"""

from __future__ import annotations

import warnings
from typing import Any

import mlflow
import numpy as np
import torch


class TorchScriptClassifier(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        with warnings.catch_warnings():  # TorchScript is deprecated (torch.export) yet supported
            warnings.simplefilter("ignore", FutureWarning)
            self.model = torch.jit.load(context.artifacts["torchscript"], map_location="cpu").eval()
        self.classes = list((context.model_config or {}).get("classes") or [])

    # np.ndarray is the one hint MLflow neither warns about nor turns into a schema (the signature is it).
    def predict(self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None) -> dict:
        images = np.asarray(model_input)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"expected uint8 images (N, C, H, W), got {images.dtype} {images.shape}")
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(np.ascontiguousarray(images)))
            probabilities = torch.softmax(logits, dim=1)
        predicted = logits.argmax(dim=1).numpy()
        labels = [self.classes[i] if i < len(self.classes) else str(i) for i in predicted.tolist()]
        return {"predicted_class": predicted.astype(np.int64), "label": np.array(labels, dtype=object),
                "probabilities": probabilities.numpy(), "logits": logits.numpy()}


mlflow.models.set_model(TorchScriptClassifier())
