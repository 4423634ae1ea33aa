"""`Importances`: averaged importances by parameter name, with the metadata that binds them, and
their file format (safetensors, the metadata as JSON under the key "lethe").

    I = (1/n) Σ_k term(g_k)      over n batches of one fixed batch size b

The values are that mean; `num_batches` (n) lets shards over disjoint parts of the data be merged
exactly, and `batch_size` (b), `method` and `model_fingerprint` say what was measured: importances
that differ in any of them are refused together.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lethe.errors import ImportancesError
from lethe.unlearning.methods import get_method

#: The safetensors metadata key that holds an importances file's metadata (JSON).
METADATA_KEY = "lethe"
#: The metadata an importances file carries, and the type of each entry.
METADATA_TYPES = {"method": str, "batch_size": int, "num_batches": int, "num_samples": int,
                  "model_fingerprint": str}


class Importances(Mapping[str, torch.Tensor]):
    """Averaged importances by parameter name, read-only, with the metadata that binds them."""

    def __init__(
        self,
        values: Mapping[str, torch.Tensor],
        *,
        method: str,
        batch_size: int,
        num_batches: int,
        num_samples: int,
        model_fingerprint: str,
    ) -> None:
        method = get_method(method).name  # refuses names no registered method has
        if num_batches < 1 or batch_size < 1 or num_samples < 1:
            raise ImportancesError("importances need at least one batch of at least one sample")
        self._values = MappingProxyType(dict(values))
        self.method = method
        self.batch_size = int(batch_size)
        self.num_batches = int(num_batches)
        self.num_samples = int(num_samples)
        self.model_fingerprint = model_fingerprint

    # Mapping protocol (read-only view; tensors are handed out as they are stored).
    def __getitem__(self, name: str) -> torch.Tensor:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return (
            f"Importances(method={self.method!r}, batch_size={self.batch_size}, "
            f"num_batches={self.num_batches}, num_samples={self.num_samples}, "
            f"tensors={len(self)}, model={self.model_fingerprint[:12]})"
        )

    @property
    def metadata(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in METADATA_TYPES}

    def check_compatible(self, other: Importances) -> None:
        """Refuse to combine importances that do not measure the same thing."""
        for key in ("method", "batch_size", "model_fingerprint"):
            mine, theirs = getattr(self, key), getattr(other, key)
            if mine != theirs:
                raise ImportancesError(
                    f"importances differ in {key}: {_short(mine)} vs {_short(theirs)}; "
                    "they cannot be merged or compared"
                )
        if set(self) != set(other):
            raise ImportancesError("importances cover different parameters")

    def check_finite(self) -> None:
        values = [value for value in self.values() if value.numel()]
        # One fused reduction and one device sync (not one per tensor): the max-norm is NaN or Inf
        # exactly when some element is.
        if len({(value.device, value.dtype) for value in values}) == 1 and values[0].is_floating_point() \
                and bool(torch.isfinite(torch.stack(torch._foreach_norm(values, float("inf")))).all()):
            return
        bad = [name for name, value in self.items() if not bool(torch.isfinite(value).all())]
        if bad:
            raise ImportancesError(f"importances hold NaN or Inf in {', '.join(bad[:3])}")

    def to(self, device: str | torch.device) -> Importances:
        """The same importances with every tensor on `device` (self when they are all there already)."""
        device = torch.device(device)
        if all(_on(value, device) for value in self.values()):
            return self
        return Importances({name: value.to(device) for name, value in self.items()}, **self.metadata)

    @classmethod
    def merge(cls, shards: Sequence[Importances]) -> Importances:
        """Combine shards computed on disjoint parts of the data: the batch-weighted mean

            I = Σ_s n_s·I_s / Σ_s n_s

        equal to one pass over all the data (to float rounding) when the shard boundaries fall on
        batch boundaries, since each shard's value is its per-batch sum over its batch count.
        """
        if not shards:
            raise ImportancesError("nothing to merge")
        first = shards[0]
        for shard in shards[1:]:
            first.check_compatible(shard)
        names = list(first)
        total_batches = sum(shard.num_batches for shard in shards)
        merged = torch._foreach_mul([first[n].double() for n in names], float(first.num_batches))
        for shard in shards[1:]:
            torch._foreach_add_(merged, [shard[n].double() for n in names], alpha=float(shard.num_batches))
        torch._foreach_div_(merged, float(total_batches))
        return cls(
            {n: m.to(first[n].dtype) for n, m in zip(names, merged, strict=True)},
            method=first.method,
            batch_size=first.batch_size,
            num_batches=total_batches,
            num_samples=sum(shard.num_samples for shard in shards),
            model_fingerprint=first.model_fingerprint,
        )

    # --- the file format -----------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {name: value.detach().to("cpu").contiguous() for name, value in self.items()}
        save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(self.metadata)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> Importances:
        try:
            with safe_open(str(path), framework="pt") as handle:
                raw = (handle.metadata() or {}).get(METADATA_KEY)
                values = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        except FileNotFoundError as exc:
            raise ImportancesError(f"no importances file at {path}") from exc
        except Exception as exc:  # safetensors raises its own error types for corrupt files
            raise ImportancesError(f"cannot read importances from {path}: {exc}") from exc
        if raw is None:
            raise ImportancesError(f"{path} holds tensors but no lethe importances metadata")
        return cls(values, **_checked_metadata(raw, path))


def _checked_metadata(raw: str, path: str | Path) -> dict[str, Any]:
    """The keyword arguments in an importances file's metadata, refused unless exactly the expected ones."""
    try:
        metadata = json.loads(raw)
    except ValueError:
        metadata = None
    if not isinstance(metadata, dict):
        raise ImportancesError(f"{path} has malformed importances metadata (not a JSON object)")
    if set(metadata) != set(METADATA_TYPES):
        raise ImportancesError(f"{path} has malformed importances metadata: keys {sorted(metadata)}, "
                               f"expected {sorted(METADATA_TYPES)}")
    for key, kind in METADATA_TYPES.items():
        value = metadata[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ImportancesError(f"{path} has malformed importances metadata: {key} is {_short(value)}")
    return metadata


def _on(tensor: torch.Tensor, device: torch.device) -> bool:
    return tensor.device.type == device.type and (device.index is None or tensor.device.index == device.index)


def _short(value: object) -> str:
    text = str(value)
    return text[:12] if len(text) == 64 else text
