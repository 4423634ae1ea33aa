"""A model directory: `model.safetensors` (state dict, buffers included) + `model.json` (the card).

The card holds what any machine needs to rebuild and verify the model: architecture name and
constructor arguments, classes and channels, input normalisation, the data set, the parameters'
fingerprint. Each file has a sha256 sidecar (`model.json.sha256`, `model.safetensors.sha256`, the
`sha256sum` format). Loading refuses a checkpoint that does not fit its architecture or its
fingerprint, holds NaN or infinite values, or whose files differ from their sidecars (or have none):
an edited card (say, its normalisation) is refused like changed weights.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar

import torch
from pydantic import ConfigDict, Field, PlainSerializer, PlainValidator, StrictInt, StrictStr, model_validator
from torch import nn

import lethe
from lethe.data.sampleset import Normalization
from lethe.errors import DataError, LetheError, ModelError
from lethe.models.zoo import SPEC_ATTRIBUTE, build_model, model_spec
from lethe.storage import sha256_file
from lethe.storage.artifacts import sidecar_sha256, sidecar_text
from lethe.storage.records import FORMAT_KEY, Record
from lethe.storage.uris import SIDECAR_SUFFIX
from lethe.unlearning.fingerprint import buffers_fingerprint, model_fingerprint

#: The card key of the buffers' sha256 (`buffers_fingerprint`); absent from cards of older lethe versions.
BUFFERS_FINGERPRINT = "buffers_fingerprint"

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model.json"
CARD_FORMAT = "lethe-model/1"


def _normalization(value: Any) -> Normalization | None:
    if value is None or isinstance(value, Normalization):
        return value
    try:
        return Normalization.from_dict(value)
    except (DataError, TypeError, AttributeError) as exc:
        raise ValueError(str(exc)) from None


CardNormalization = Annotated[
    Normalization | None, PlainValidator(_normalization),
    PlainSerializer(lambda value: value.to_dict() if value is not None else None)]


class ModelCard(Record):
    """The contents of model.json. Keys the card does not know are kept (`extra`), and written back."""

    FORMAT: ClassVar[str] = CARD_FORMAT
    WHAT: ClassVar[str] = "a lethe model card"
    ERROR: ClassVar[type[LetheError]] = ModelError
    JSON_INDENT: ClassVar[int] = 2  # the layout cards always had
    model_config = ConfigDict(extra="allow")

    arch: Annotated[StrictStr, Field(min_length=1)]
    num_classes: Annotated[StrictInt, Field(ge=2)]
    in_channels: Annotated[StrictInt, Field(ge=1)]
    fingerprint: StrictStr
    arch_kwargs: dict[str, Any] = {}
    normalization: CardNormalization = None
    dataset: str | None = None  # the name or URI the data set was read from
    dataset_fingerprint: str | None = None  # of its train split: the data this model may meet
    classes: list[StrictStr] | None = None
    image_size: list[Annotated[StrictInt, Field(gt=0)]] | None = None
    lethe_version: str = lethe.__version__
    created_at: str = ""

    @model_validator(mode="before")
    @classmethod
    def _flatten_extra(cls, data: Any) -> Any:
        """An "extra" mapping (the dataclass card's constructor argument) adds its keys to the card's."""
        if isinstance(data, dict) and isinstance(data.get("extra"), dict):
            nested = {k: v for k, v in data["extra"].items() if k not in cls.model_fields}
            data = {**{k: v for k, v in data.items() if k != "extra"}, **nested}
        return data

    @property
    def extra(self) -> dict[str, Any]:
        """The card's keys that lethe's fields do not name (e.g. `unlearning`, `root_fingerprint`)."""
        return dict(self.model_extra or {})

    def to_dict(self) -> dict[str, Any]:
        """The card as model.json holds it (format tag first)."""
        return self.to_fields()

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ModelCard:
        """A card from its fields (a format tag, if present, must be this one)."""
        return cls.from_fields({FORMAT_KEY: cls.FORMAT, **raw}, where="the model card")


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
    card = ModelCard.read(card_path)
    _check_sidecar(card_path)
    return card


def _check_sidecar(path: Path) -> None:
    """`path` must match the sha256 recorded beside it; a missing sidecar is refused like a wrong one."""
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    try:
        text = sidecar.read_bytes() if sidecar.is_file() else None
    except OSError:
        text = b""
    recorded = None if text is None else sidecar_sha256(text, path.name, str(path)) if text.strip() else ""
    if recorded is None:
        raise ModelError(f"{path} has no recorded sha256 ({sidecar.name}): refusing to trust it")
    if recorded != sha256_file(path):
        raise ModelError(f"{path} differs from its recorded sha256 ({sidecar.name}): it was changed "
                         "after it was saved")


def write_sidecars(directory: str | Path, recorded: Mapping[str, str] | None = None) -> None:
    """Write the sidecars of a model directory's files: from `recorded` (file name -> sha256, e.g. a
    registry's manifest of a version made before sidecars existed), else from the files as they are.
    Sealing files as they are vouches for them: only for files the caller itself just verified."""
    directory = _directory(directory)
    for name in (WEIGHTS_FILE, CARD_FILE):
        path = directory / name
        if path.is_file():
            sidecar = path.with_name(name + SIDECAR_SUFFIX)
            sidecar.write_text(sidecar_text((recorded or {}).get(name) or sha256_file(path), name))


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
    fields[BUFFERS_FINGERPRINT] = buffers_fingerprint(model)
    fields.setdefault("created_at", datetime.now(UTC).isoformat(timespec="seconds"))
    fields["lethe_version"] = lethe.__version__
    card = ModelCard.from_dict(fields)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()}
    # Write beside, then rename: a crash never leaves a half-written model behind a valid name.
    weights_tmp, card_tmp = out / f".{WEIGHTS_FILE}.tmp", out / f".{CARD_FILE}.tmp"
    save_file(state, str(weights_tmp), metadata={"fingerprint": card.fingerprint, "arch": card.arch})
    card.write(card_tmp)
    sidecars = [(out / f".{name}{SIDECAR_SUFFIX}.tmp", out / f"{name}{SIDECAR_SUFFIX}",
                 sidecar_text(sha256_file(tmp), name))
                for name, tmp in ((WEIGHTS_FILE, weights_tmp), (CARD_FILE, card_tmp))]
    for tmp, _final, line in sidecars:
        tmp.write_text(line)
    # Data first, sidecars last: a crash in between leaves files that no sidecar vouches for (refused).
    os.replace(weights_tmp, out / WEIGHTS_FILE)
    os.replace(card_tmp, out / CARD_FILE)
    for tmp, final, _line in sidecars:
        os.replace(tmp, final)
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
    broken = {name: int((~torch.isfinite(tensor)).sum()) for name, tensor in state.items()
              if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())}
    if broken:
        name, count = next(iter(broken.items()))
        raise ModelError(f"checkpoint {weights} holds NaN or infinite values in {len(broken)} tensor(s) "
                         f"(e.g. {count} in {name}): a model like this predicts nothing")
    model.load_state_dict(state, strict=True)
    fingerprint = model_fingerprint(model)
    if fingerprint != card.fingerprint:
        raise ModelError(f"checkpoint {weights} has fingerprint {fingerprint[:12]}, its card says "
                         f"{card.fingerprint[:12]}: the weights were changed or swapped")
    recorded = getattr(card, BUFFERS_FINGERPRINT, None)  # cards written before it was recorded lack it
    if recorded is not None and buffers_fingerprint(model) != recorded:
        raise ModelError(f"checkpoint {weights} has buffers (e.g. BatchNorm statistics) that differ from "
                         "those its card records: the weights were changed or swapped")
    _check_sidecar(weights)  # last: the checks above name what is wrong; this catches the rest
    setattr(model, SPEC_ATTRIBUTE, {"arch": card.arch, "num_classes": card.num_classes,
                                    "in_channels": card.in_channels, "arch_kwargs": dict(card.arch_kwargs)})
    return model.to(device).eval(), card


def verify_model_dir(path: str | Path) -> ModelCard:
    """Every check `load_model` makes (sidecars, architecture, finite values, fingerprint), for a
    directory about to be handed on (e.g. registered): refused here, not by every later run."""
    return load_model(path)[1]
