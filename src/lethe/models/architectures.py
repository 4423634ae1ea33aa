"""Architectures: one `Architecture` row per model lethe can build, and the registry the code reads.

In the style of torch's `optim_db`: a row carries everything the product and the tests need to know
about an architecture, and nothing else names architectures. `build_model` takes its builder from
here, `forward_stages` its stages (where dampening may be cut off), the model card the keyword
defaults its builder records, `lethe train --model` its help text, and
`tests/unit/test_models_zoo.py` builds every row and checks its contract (stages compose to the
forward pass, defaults valid, a small instance runs at its smallest image size).

Adding an architecture: a module with its builder (and its stages, if dampening may be cut off
inside it), and one `register_architecture(Architecture(...))` entry at the bottom of this file:
2 files. Builders and stages are given as `"module:attribute"` references, resolved on first use,
so reading the rows (the CLI's help) imports neither torch nor torchvision.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from lethe.data.catalog import ROW_NAME, Ref, is_ref, resolve
from lethe.errors import ModelError

if TYPE_CHECKING:
    from torch import nn

    Stages = list[tuple[str, nn.Module]]


def _check_ref(row: str, what: str, ref: object) -> None:
    if not is_ref(ref):
        raise ModelError(f"architecture {row!r}: {what} must be a callable or 'module:attribute', not "
                         f"{ref!r}")


@dataclass(frozen=True)
class Architecture:
    """One architecture. `builder(num_classes=, in_channels=, **arch_kwargs) -> nn.Module` builds a
    freshly initialised model; `stages(model) -> [(name, module), ...]` splits its forward pass into
    stages whose composition is `model(x)` (None: one stage, dampening acts on every layer)."""

    name: str
    summary: str  # a few words for the CLI's help
    builder: Ref
    stages: Ref | None = None
    #: The smallest square input (pixels) it is meant for (smaller ones may run, with less spatial
    #: resolution than its layers expect); `image_size`: the size it is designed for (None: any size
    #: from `min_image_size` up).
    min_image_size: int = 1
    image_size: int | None = None
    #: Where it trains in reasonable time.
    device: Literal["cpu", "cuda"] = "cpu"
    #: Arguments of a small instance: what contract tests and smoke runs build.
    sample_kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not ROW_NAME.match(self.name):
            raise ModelError(f"an architecture name is lower-case letters, digits, '_', '.', '-': "
                             f"{self.name!r}")
        _check_ref(self.name, "builder", self.builder)
        if self.stages is not None:
            _check_ref(self.name, "stages", self.stages)
        if self.min_image_size < 1 or (self.image_size is not None and self.image_size < self.min_image_size):
            raise ModelError(f"architecture {self.name!r}: image sizes must satisfy 1 <= min_image_size "
                             f"<= image_size, got {self.min_image_size} and {self.image_size}")
        if self.device not in ("cpu", "cuda"):
            raise ModelError(f"architecture {self.name!r}: device must be cpu or cuda, not {self.device!r}")
        object.__setattr__(self, "sample_kwargs", MappingProxyType(dict(self.sample_kwargs)))

    def build(self, num_classes: int, in_channels: int, **kwargs: Any) -> nn.Module:
        return resolve(self.builder)(num_classes=num_classes, in_channels=in_channels, **kwargs)

    def split(self, model: nn.Module) -> Stages:
        return resolve(self.stages)(model) if self.stages is not None else [("model", model)]

    def default_kwargs(self) -> dict[str, Any]:
        """The builder's keyword defaults (JSON-able ones): recorded in the model card, so a model
        saved today rebuilds the same if a default changes later."""
        signature = inspect.signature(resolve(self.builder))
        return {name: p.default for name, p in signature.parameters.items()
                if p.kind is p.KEYWORD_ONLY and p.default is not p.empty
                and isinstance(p.default, int | float | str | bool)}

    def describe(self) -> str:
        """One phrase for help text: the name, the summary, the sizes and the device it suits."""
        size = (f"{self.image_size}x{self.image_size}" if self.image_size
                else f"{self.min_image_size}x{self.min_image_size} and up")
        return f"{self.name} ({self.summary}; images {size}; {'GPU' if self.device == 'cuda' else 'CPU'})"


_ROWS: dict[str, Architecture] = {}
#: name -> Architecture, read-only and live (rows registered later appear in it).
ARCHITECTURES: Mapping[str, Architecture] = MappingProxyType(_ROWS)


def register_architecture(row: Architecture) -> Architecture:
    """Add a row; a second row of the same name is refused."""
    if row.name in _ROWS:
        raise ModelError(f"architecture {row.name!r} is registered already")
    _ROWS[row.name] = row
    return row


def unregister_architecture(name: str) -> None:
    _ROWS.pop(name, None)


def architecture_names() -> list[str]:
    return list(_ROWS)


def get_architecture(name: str) -> Architecture:
    """The row of `name`; an unknown name is a ModelError naming the registered ones."""
    row = _ROWS.get(name)
    if row is None:
        raise ModelError(f"unknown model {name!r}; expected one of {', '.join(_ROWS)} or a model directory")
    return row


def architecture_help() -> str:
    """The rows, one phrase each, for `--model` help."""
    return ", ".join(row.describe() for row in _ROWS.values())


# --- the rows ------------------------------------------------------------------------------------------

register_architecture(Architecture(
    name="convnet", summary="a small CNN", builder="lethe.models.convnet:ConvNet",
    stages="lethe.models.convnet:convnet_stages", min_image_size=8, device="cpu",
    sample_kwargs={"width": 4, "hidden": 16}))
register_architecture(Architecture(
    name="resnet18-cifar", summary="ResNet18 with the SSD paper's 3x3 stem, no max-pool",
    builder="lethe.models.resnet:resnet18_cifar", stages="lethe.models.resnet:resnet_stages",
    min_image_size=8, image_size=32, device="cuda"))
register_architecture(Architecture(
    name="resnet18", summary="torchvision's ResNet18", builder="lethe.models.resnet:resnet18",
    stages="lethe.models.resnet:resnet_stages", min_image_size=32, image_size=224, device="cuda"))
register_architecture(Architecture(
    name="vit_b_16", summary="ViT-B/16, inputs resized to its image_size",
    builder="lethe.models.vit:vit_b_16",
    min_image_size=16, image_size=224, device="cuda", sample_kwargs={"image_size": 32}))
