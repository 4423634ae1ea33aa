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
    return fingerprint_of(parameter_snapshot(model))


def parameter_snapshot(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(name, contiguous CPU tensor) of every named parameter, for `fingerprint_of` to hash later
    (on another thread: hashlib releases the GIL, so hashing can overlap GPU work)."""
    return [(name, parameter.detach().to("cpu").contiguous()) for name, parameter in model.named_parameters()]


def fingerprint_of(snapshot: list[tuple[str, torch.Tensor]]) -> str:
    digest = hashlib.sha256()
    for name, tensor in snapshot:
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(repr(tuple(tensor.shape)).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # the buffer itself, no copy
    return digest.hexdigest()
