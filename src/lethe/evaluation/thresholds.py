"""The gate's thresholds: `thresholds.yaml` (packaged beside this module) is their one source.

`Thresholds` is derived from that file when this module is imported: one frozen dataclass field per
leaf, named by its path (`class: forget_accuracy_max` is `class_forget_accuracy_max`), its default the
file's value. So adding a threshold is one line in the YAML; the code that reads it (a gate check,
a forgetting target) finds it by the check's name: check C of a scenario whose thresholds section is
S has the limit `S.C_max` (`Thresholds.limit(C, S)`); checks every scenario runs have no section.

`load_thresholds(source)` is the one way to read them: the defaults, overridden by a YAML file, inline
YAML/JSON (pipelines: pods cannot read the submitting machine's files) or a storage URI (checked
against its sha256 sidecar). The same limits are the α search's targets and the gate's criteria.
"""

from __future__ import annotations

import dataclasses
import math
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from lethe.errors import ConfigError, StorageError
from lethe.nested import flatten
from lethe.storage import get_bytes
from lethe.storage.uris import local_path

DEFAULTS_FILE = "thresholds.yaml"
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@cache
def default_values() -> dict[str, float]:
    """The packaged defaults, flattened: {"test_accuracy_drop_max": 0.02, "class_forget_accuracy_max": …}."""
    text = resources.files("lethe.evaluation").joinpath(DEFAULTS_FILE).read_text()
    return {name: float(value) for name, value in flatten(yaml.safe_load(text), "_").items()}


def _to_dict(self: Any) -> dict[str, float]:
    return dataclasses.asdict(self)


def _limit(self: Any, check: str, section: str = "") -> float:
    """The limit of gate check `check` in thresholds section `section` (`<section>_<check>_max`)."""
    name = f"{section}_{check}_max" if section else f"{check}_max"
    if not hasattr(self, name):
        raise ConfigError(f"no gate threshold {f'{section}.{check}_max' if section else name} "
                          f"(thresholds.yaml has {', '.join(default_values())})")
    return float(getattr(self, name))


Thresholds = dataclasses.make_dataclass(
    "Thresholds",
    [(name, float, dataclasses.field(default=value)) for name, value in default_values().items()],
    frozen=True,
    namespace={"__doc__": "Limits of the gate, one field per leaf of thresholds.yaml; accuracies and rates "
                          "are shares (0.02 = 2 points).",
               "to_dict": _to_dict, "limit": _limit})
Thresholds.__module__ = __name__  # pickling and reprs name this module (3.12's make_dataclass(module=))


def parse_yaml(text: str, *, source: str) -> Thresholds:
    """The defaults, overridden by the keys of the YAML (or JSON) mapping in `text`."""
    try:
        override = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        problem = str(exc).splitlines()[0]
        raise ConfigError(f"gate thresholds in {source} are not valid YAML: {problem}") from exc
    if not isinstance(override, dict):
        raise ConfigError(f"gate thresholds in {source} must be a mapping")
    values = flatten(override, "_")
    unknown = sorted(set(values) - set(default_values()))
    if unknown:
        raise ConfigError(f"unknown gate threshold(s): {', '.join(unknown)}")
    try:
        parsed = {k: float(v) for k, v in values.items()}
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"gate thresholds must be numbers: {exc}") from exc
    if any(not math.isfinite(v) for v in parsed.values()):
        raise ConfigError("gate thresholds must be finite numbers")
    return Thresholds(**parsed)


def _read_file(path: str | Path) -> Thresholds:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read gate thresholds from {path}: {exc.strerror or exc}") from exc
    return parse_yaml(text, source=str(path))


def load_thresholds(source: str | Path | Thresholds | None = None) -> Thresholds:
    """The gate's thresholds: the defaults (None or ""), a `Thresholds` as it is, a local YAML file (a
    path, or `file://`), a storage URI (`s3://…`, read through lethe.storage and checked against its
    `.sha256` sidecar, as `sha256sum FILE > FILE.sha256` writes it), or inline YAML/JSON (a mapping,
    e.g. `{class: {forget_accuracy_max: 0.03}}`) overriding the defaults key by key."""
    if isinstance(source, Thresholds):
        return source
    if source is None or not str(source).strip():
        return Thresholds()
    if isinstance(source, Path):
        return _read_file(source)
    text = str(source).strip()
    if text.startswith("file://"):
        return _read_file(local_path(text))
    if _URI.match(text):
        try:
            content = get_bytes(text)
        except StorageError as exc:
            raise ConfigError(f"cannot read gate thresholds from {text}: {exc}") from exc
        return parse_yaml(content.decode("utf-8", errors="replace"), source=text)
    if text.startswith(("{", "[")) or "\n" in text or (":" in text and not Path(text).exists()):
        return parse_yaml(text, source="inline thresholds")
    return _read_file(text)
