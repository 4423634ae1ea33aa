"""A model's identity: sha256 over its parameters' names, dtypes, shapes and bytes."""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def model_fingerprint(model: nn.Module) -> str:
    """Hex sha256 of every named parameter (name, dtype, shape, raw bytes), in module order.

    Buffers (BatchNorm running statistics) are not parameters: LFSSD never touches them, and
    the importances are bound to the parameters only.
    """
    digest = hashlib.sha256()
    for name, parameter in model.named_parameters():
        tensor = parameter.detach().to("cpu").contiguous()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(repr(tuple(tensor.shape)).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
