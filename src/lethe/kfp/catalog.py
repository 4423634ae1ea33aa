"""The pipelines by name (`pipelines.PIPELINES`), built under the current settings, and their parameters
(checked by `lethe.kfp.params`' schema), for the compiler, the scheduler and the local runner."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from lethe.config import environment
from lethe.errors import PipelineError
from lethe.kfp.params import pipeline_params


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
    """The pipeline (a KFP GraphComponent) called `name`, e.g. `scheduled`; an unknown name is refused
    before kfp is imported."""
    pipeline_params(name)
    pipelines = import_pipelines().PIPELINES
    try:
        return pipelines[name]
    except KeyError:
        raise PipelineError(f"unknown pipeline {name!r}; expected one of {', '.join(pipelines)}") from None


def parse_params(name: str, items: list[str] | None) -> dict[str, Any]:
    """`-p KEY=VALUE` items of pipeline `name`, typed and checked by its parameter schema
    (`lethe.kfp.params`): nothing is imported, claimed or sent before this passes."""
    return pipeline_params(name).parse(items)


def check_params(name: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Parameters given in Python, checked by the schema of pipeline `name`; returns them as the
    pipeline takes them. Refuses unknown ones, before anything is sent or run."""
    return pipeline_params(name).check(params)


def build(name: str, env: Mapping[str, str | None] | None = None) -> Any:
    """Pipeline `name` built anew under this environment (plus `env`): the placement variables
    (image, GPUs, resources, retries) are read when a pipeline is built, not when it was imported."""
    from kfp import dsl

    built = pipeline(name)
    with environment(dict(env or {})):
        return dsl.pipeline(name=built.name, description=built.description,
                            pipeline_config=built.pipeline_config)(built.pipeline_func)
