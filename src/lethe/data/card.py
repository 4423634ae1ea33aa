"""What a data set promises a model: classes, channels, image size, normalisation (`DatasetCard`),
and the names its per-sample metadata columns may take.

Torch-free: the data set rows (`lethe.data.catalog`) and the CLI's help read it without importing
torch; `Normalization.apply` imports torch when it runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lethe.errors import DataError

if TYPE_CHECKING:
    import torch

#: A metadata column is named like an identifier: it becomes an array name in shards, a CSV header.
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_column_name(column: object) -> str:
    """`column` if it can name a per-sample metadata column (an identifier), else a DataError."""
    if not isinstance(column, str) or not _COLUMN.match(column):
        raise DataError(f"a metadata column is named by letters, digits and '_' (not starting with a digit), "
                        f"not {column!r}")
    return column


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std of images scaled to [0, 1]: x = (u8 / 255 - mean) / std."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise DataError(f"normalization needs one mean and one std per channel, got {self}")
        if any(s <= 0 for s in self.std):
            raise DataError(f"normalization std must be positive, got {self.std}")

    @classmethod
    def uniform(cls, channels: int, mean: float = 0.5, std: float = 0.5) -> Normalization:
        return cls((mean,) * channels, (std,) * channels)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Normalization:
        try:
            return cls(tuple(float(v) for v in raw["mean"]), tuple(float(v) for v in raw["std"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed normalization {raw!r}: {exc}") from exc

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, C, H, W] (any device) → float32, normalised."""
        import torch

        if images.shape[1] != len(self.mean):
            raise DataError(f"images have {images.shape[1]} channels, normalization has {len(self.mean)}")
        mean = torch.tensor(self.mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
        return (images.to(torch.float32) / 255.0 - mean) / std


@dataclass(frozen=True)
class DatasetCard:
    """The shape of a data set's samples: what a model trained on it takes. `classes`: the class
    names, or None where they come from the data's own files."""

    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    normalization: Normalization
    classes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.num_classes < 2 or self.in_channels < 1 or len(self.image_size) != 2 \
                or min(self.image_size) < 1:
            raise DataError(f"a data set card needs at least 2 classes, 1 channel and a positive (height, "
                            f"width), got {self.num_classes}, {self.in_channels}, {self.image_size}")
        if len(self.normalization.mean) != self.in_channels:
            raise DataError(f"a {self.in_channels}-channel card with normalization for "
                            f"{len(self.normalization.mean)} channels")
        if self.classes is not None and len(self.classes) != self.num_classes:
            raise DataError(f"{len(self.classes)} class names for {self.num_classes} classes")

    def describe(self) -> str:
        """e.g. `10 classes, 1x8x8`."""
        height, width = self.image_size
        return f"{self.num_classes} classes, {self.in_channels}x{height}x{width}"

    def differences(self, other: DatasetCard) -> list[str]:
        """Where `other` (e.g. a loaded split's card) breaks this card's promise; class names only
        where this card names them."""
        found = []
        for name in ("num_classes", "in_channels", "image_size", "normalization"):
            if getattr(self, name) != getattr(other, name):
                found.append(f"{name} {getattr(other, name)} (the card says {getattr(self, name)})")
        if self.classes is not None and self.classes != other.classes:
            found.append(f"classes {other.classes} (the card says {self.classes})")
        return found
