"""The device lethe computes on when none is given (torch is imported only when asked)."""

from __future__ import annotations

import re

from lethe.errors import ConfigError

#: The device kinds lethe runs on; torch knows more (xla, meta, ...) that lethe's steps do not support.
DEVICE_KINDS = ("cpu", "cuda", "mps")
_DEVICE = re.compile(r"(?P<kind>[a-z]+)(?::(?P<index>\d+))?")


def default_device() -> str:
    """`cuda` when a GPU is visible, else `cpu`."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(text: str | None) -> str:
    """The device named by `text` (`cpu`, `cuda`, `cuda:N`, `mps`), checked to exist here; None: the default.

    Refuses, as a ConfigError, a name torch does not run lethe on and an accelerator this machine
    lacks, so that a command fails before it loads data or a model rather than in the middle.
    """
    if text is None:
        return default_device()
    match = _DEVICE.fullmatch(text.strip().lower())
    if match is None or match["kind"] not in DEVICE_KINDS:
        raise ConfigError(f"unknown device {text!r}: expected cpu, cuda, cuda:N or mps")
    kind, index = match["kind"], match["index"]
    import torch

    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device {text!r}: no CUDA GPU is visible on this machine (use --device cpu)")
        if index is not None and int(index) >= count:
            raise ConfigError(f"device {text!r}: this machine has {count} CUDA GPU(s), "
                              f"cuda:0..cuda:{count - 1}")
    elif kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {text!r}: MPS is not available on this machine (use --device cpu)")
    elif kind == "cpu" and index not in (None, "0"):
        raise ConfigError(f"device {text!r}: there is one CPU device, cpu or cpu:0")
    return kind if index is None else f"{kind}:{int(index)}"
