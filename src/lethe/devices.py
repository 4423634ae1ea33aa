"""The device lethe computes on when none is given (torch is imported only when asked)."""

from __future__ import annotations


def default_device() -> str:
    """`cuda` when a GPU is visible, else `cpu`."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
