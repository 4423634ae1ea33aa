"""A model directory: `model.safetensors` (state dict, buffers included) + `model.json` (the card).

The card holds what any machine needs to rebuild and verify the model: architecture name and
constructor arguments, classes and channels, input normalisation, the data set, the parameters'
fingerprint. Loading refuses a checkpoint that does not fit its architecture or its fingerprint.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

import lethe
from lethe.data.sampleset import Normalization
from lethe.errors import DataError, ModelError
from lethe.models.zoo import SPEC_ATTRIBUTE, build_model, model_spec
from lethe.unlearning.fingerprint import model_fingerprint

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model.json"
CARD_FORMAT = "lethe-model/1"


@dataclass
class ModelCard:
    """The contents of model.json. Keys the card does not know are kept in `extra`."""

    arch: str
    num_classes: int
    in_channels: int
    fingerprint: str
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    normalization: Normalization | None = None
    dataset: str | None = None
    classes: list[str] | None = None
    image_size: list[int] | None = None
    lethe_version: str = lethe.__version__
    created_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        known = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        known["normalization"] = self.normalization.to_dict() if self.normalization else None
        return {"format": CARD_FORMAT, **known, **self.extra}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ModelCard:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in raw.items() if k in names}
        extra = {k: v for k, v in raw.items() if k not in names and k != "format"}
        extra.update(raw.get("extra") or {})
        try:
            if known.get("normalization") is not None:
                known["normalization"] = Normalization.from_dict(known["normalization"])
            return cls(**known, extra=extra)
        except (TypeError, DataError) as exc:
            raise ModelError(f"malformed model card: {exc}") from exc


def _directory(path: str | Path) -> Path:
    path = Path(path)
    if path.is_file() and path.name in (WEIGHTS_FILE, CARD_FILE):
        path = path.parent
    if not path.is_dir():
        raise ModelError(f"no model directory at {path}")
    return path


def is_model_dir(path: str | Path) -> bool:
    return (Path(path) / CARD_FILE).is_file()


def read_card(path: str | Path) -> ModelCard:
    """The card of a model directory, without loading the weights."""
    card_path = _directory(path) / CARD_FILE
    if not card_path.is_file():
        raise ModelError(f"{card_path.parent} is not a model directory: no {CARD_FILE}")
    try:
        raw = json.loads(card_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {card_path}: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != CARD_FORMAT:
        raise ModelError(f"{card_path} is not a lethe model card (format {CARD_FORMAT})")
    return ModelCard.from_dict(raw)


def save_model(model: nn.Module, out_dir: str | Path,
               card_fields: Mapping[str, Any] | None = None) -> ModelCard:
    """Write `out_dir/model.safetensors` and `out_dir/model.json`; returns the card written.

    Architecture fields default to the model's `build_model` spec; `card_fields` adds to or
    overrides them (e.g. dataset, normalization, classes, any extra key).
    """
    from safetensors.torch import save_file

    fields: dict[str, Any] = dict(model_spec(model) or {})
    fields.update(card_fields or {})
    missing = [k for k in ("arch", "num_classes", "in_channels") if k not in fields]
    if missing:
        raise ModelError(f"cannot save a model without {', '.join(missing)} (build it with build_model "
                         "or pass them in card_fields)")
    if isinstance(fields.get("normalization"), Normalization):
        fields["normalization"] = fields["normalization"].to_dict()
    fields["fingerprint"] = model_fingerprint(model)
    fields.setdefault("created_at", datetime.now(UTC).isoformat(timespec="seconds"))
    fields["lethe_version"] = lethe.__version__
    card = ModelCard.from_dict(fields)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()}
    # Write beside, then rename: a crash never leaves a half-written model behind a valid name.
    weights_tmp, card_tmp = out / f".{WEIGHTS_FILE}.tmp", out / f".{CARD_FILE}.tmp"
    save_file(state, str(weights_tmp), metadata={"fingerprint": card.fingerprint, "arch": card.arch})
    card_tmp.write_text(json.dumps(card.to_dict(), indent=2, sort_keys=False) + "\n")
    os.replace(weights_tmp, out / WEIGHTS_FILE)
    os.replace(card_tmp, out / CARD_FILE)
    return card


def _mismatch(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]) -> str | None:
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [f"{k} {tuple(found[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in found and found[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensor(s) (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s) (e.g. {unexpected[0]})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es) (e.g. {shapes[0]})")
    return "; ".join(problems) or None


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelCard]:
    """Rebuild the model of a model directory, load its weights and verify its fingerprint.

    Returns the model in eval mode on `device`.
    """
    from safetensors.torch import load_file

    directory = _directory(path)
    card = read_card(directory)
    model = build_model(card.arch, num_classes=card.num_classes, in_channels=card.in_channels,
                        **card.arch_kwargs)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError(f"{directory} has a card but no {WEIGHTS_FILE}")
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise ModelError(f"corrupt checkpoint {weights}: {exc}") from exc
    problem = _mismatch(model.state_dict(), state)
    if problem:
        raise ModelError(f"checkpoint {weights} does not match architecture {card.arch}: {problem}")
    model.load_state_dict(state, strict=True)
    fingerprint = model_fingerprint(model)
    if fingerprint != card.fingerprint:
        raise ModelError(f"checkpoint {weights} has fingerprint {fingerprint[:12]}, its card says "
                         f"{card.fingerprint[:12]}: the weights were changed or swapped")
    setattr(model, SPEC_ATTRIBUTE, {"arch": card.arch, "num_classes": card.num_classes,
                                    "in_channels": card.in_channels, "arch_kwargs": dict(card.arch_kwargs)})
    return model.to(device).eval(), card
