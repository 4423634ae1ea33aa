"""The pipelines by name (`pipelines.PIPELINES`) and their parameters, for the compiler, the
scheduler and the local runner."""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from lethe.errors import PipelineError


def import_pipelines(module: str = "pipelines") -> ModuleType:
    """`pipelines` (or one of its modules) from the installed distribution, which ships pipelines/ and
    components/; imported here, when a command needs it, because it imports kfp."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name not in ("pipelines", module, "components"):
            raise
        raise PipelineError(f"the pipeline definitions are not installed ({exc.name} is missing): "
                            "install the lethe-unlearning distribution, which ships pipelines/ and "
                            "components/") from None


def pipeline_names() -> list[str]:
    return list(import_pipelines().PIPELINES)


def pipeline(name: str) -> Any:
    """The pipeline (a KFP GraphComponent) called `name`, e.g. `scheduled`."""
    pipelines = import_pipelines().PIPELINES
    try:
        return pipelines[name]
    except KeyError:
        raise PipelineError(f"unknown pipeline {name!r}; expected one of {', '.join(pipelines)}") from None


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """`key=value` pairs; a value that reads as JSON (number, list, bool) is taken as such."""
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise PipelineError(f"pipeline parameter {item!r} is not key=value")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        params[key.strip()] = value
    return params


def check_params(name: str, params: Mapping[str, Any]) -> None:
    """Refuse parameters the pipeline does not take, before anything is sent or run."""
    known = inspect.signature(pipeline(name).pipeline_func).parameters
    unknown = [key for key in params if key not in known]
    if unknown:
        raise PipelineError(f"pipeline {name} has no parameter(s) {', '.join(unknown)}; "
                            f"it takes {', '.join(known)}")
