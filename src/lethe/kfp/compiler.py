"""Compile the pipelines to KFP's YAML, and submit one run to a KFP API."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lethe.errors import PipelineError
from lethe.kfp.catalog import check_params, pipeline, pipeline_names


def compile_pipeline(name: str, out_path: str | Path) -> Path:
    """Write pipeline `name` as compiled with this environment's settings (image, GPUs, resources)."""
    from kfp import compiler

    component = pipeline(name)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(component, str(out))
    return out


def compile_all(out_dir: str | Path) -> dict[str, Path]:
    """Write `<out_dir>/<name>.yaml` for every pipeline."""
    return {name: compile_pipeline(name, Path(out_dir) / f"{name}.yaml") for name in pipeline_names()}


def client(host: str, namespace: str | None = None) -> Any:
    """A `kfp.Client` for the KFP API at `host`; a one-line PipelineError when it cannot be reached."""
    import kfp

    try:
        return kfp.Client(host=host, namespace=namespace)
    except Exception as exc:  # connection refused, auth, bad URL: kfp raises many types
        raise PipelineError(f"cannot reach the KFP API at {host}: {exc}") from exc


def submit(name: str, params: Mapping[str, Any] | None, *, host: str, experiment: str,
           run_name: str | None = None, namespace: str | None = None) -> str:
    """Start one run on a KFP cluster; returns its run id."""
    params = dict(params or {})
    check_params(name, params)
    component = pipeline(name)
    kfp_client = client(host, namespace)
    try:
        result = kfp_client.create_run_from_pipeline_func(component, arguments=params, run_name=run_name,
                                                          experiment_name=experiment, namespace=namespace)
    except Exception as exc:
        raise PipelineError(f"KFP refused the run: {exc}") from exc
    return str(result.run_id)
