"""Batched, gradient-free forward passes: the one expensive part of evaluation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from lethe.evaluation.metrics import check_logits


def _inputs_of(batch: Any) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    raise TypeError("each batch must be an input tensor or a tuple (inputs, labels, ...)")


def predict_logits(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
    desc: str = "evaluating",
    what: str = "model",
) -> torch.Tensor:
    """Logits [N, K] on the CPU for every batch, in order; the model's mode and device are restored.

    Raises EvaluationError when the model outputs NaN or Inf (see `check_logits`).
    """
    outputs = [output.float().cpu() for output in forward_batches(model, batches, device=device,
                                                                   progress=progress, desc=desc)]
    logits = torch.cat(outputs) if outputs else torch.empty(0, 0)
    if outputs:
        check_logits(logits, what=what)
    return logits


def forward_batches(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    device: str | torch.device | None = None,
    progress: bool = False,
    desc: str = "forward",
) -> list[torch.Tensor]:
    """The model's outputs per batch, left on the device: e.g. a prefix of stages, whose outputs
    later stages run from. The model's mode, device and memory layout are restored."""
    first = next(iter(model.parameters()), None)
    original_device = first.device if first is not None else torch.device("cpu")
    target = torch.device(device) if device is not None else original_device
    was_training = model.training
    total = len(batches) if hasattr(batches, "__len__") else None
    # Channels-last convolutions cost ~0.7x the CPU time of the default layout (convnet,
    # Fashion-MNIST); the model's layout is restored afterwards (values are never changed).
    channels_last = target.type == "cpu"
    outputs: list[torch.Tensor] = []
    try:
        model.to(target)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        model.eval()
        # Only the loop runs in inference mode: parameters re-laid out inside it would become
        # inference tensors that can never take gradients again (importances need them).
        with torch.inference_mode():
            for batch in tqdm(batches, total=total, desc=desc, disable=not progress, unit="batch",
                              leave=False):
                inputs = _inputs_of(batch).to(target, non_blocking=True)
                if channels_last and inputs.ndim == 4:
                    inputs = inputs.contiguous(memory_format=torch.channels_last)
                outputs.append(model(inputs))
    finally:
        model.train(was_training)
        if channels_last:
            model.to(memory_format=torch.contiguous_format)
        model.to(original_device)
    return outputs
