"""Compile the pipelines to KFP's YAML, and submit one run to a KFP API."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lethe.config import platform_settings, settings
from lethe.errors import PipelineError
from lethe.kfp import host as kfp_host
from lethe.kfp.catalog import build, check_params, pipeline_names


def compile_pipeline(name: str, out_path: str | Path) -> Path:
    """Write pipeline `name` as compiled with this environment's settings (image, GPUs, resources)."""
    from kfp import compiler

    component = build(name)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(component, str(out))
    return out


def gpu_note() -> str | None:
    """One line when the pipelines compiled here request no GPU because no CUDA image is configured."""
    placement = platform_settings()
    if placement.cuda_image is not None:
        return None
    return (f"no GPU requested: LETHE_CUDA_IMAGE is not set, so every task runs on the CPU image "
            f"{settings().image} (set it to the CUDA image to give the GPU steps a GPU)")


def compile_all(out_dir: str | Path) -> dict[str, Path]:
    """Write `<out_dir>/<name>.yaml` for every pipeline."""
    return {name: compile_pipeline(name, Path(out_dir) / f"{name}.yaml") for name in pipeline_names()}


def client(host: str, namespace: str | None = None) -> Any:
    """A `kfp.Client` for the KFP API at `host`; a one-line PipelineError when it cannot be reached."""
    import logging
    import warnings

    import kfp

    urllib3 = logging.getLogger("urllib3.connectionpool")
    level = urllib3.level
    urllib3.setLevel(logging.ERROR)  # kfp's client logs each retry: the error below says it once
    try:
        with warnings.catch_warnings():
            # "This client only works with Kubeflow Pipeline v2.0.0-beta.2 and later": KFP 2.17 is.
            warnings.simplefilter("ignore", FutureWarning)
            return kfp.Client(host=host, namespace=namespace)
    except Exception as exc:  # connection refused, auth, bad URL: kfp raises many types
        raise PipelineError(f"cannot reach the KFP API at {host}: {str(exc).splitlines()[0][:300]}") from exc
    finally:
        urllib3.setLevel(level)


def submit(name: str, params: Mapping[str, Any] | None, *, host: str, experiment: str,
           run_name: str | None = None, namespace: str | None = None) -> str:
    """Start one run on a KFP cluster; returns its run id. The parameters and the host are checked
    before the pipelines are imported: a refusal takes seconds and sends nothing."""
    params = check_params(name, params)
    kfp_host.check_host(host)
    component = build(name)  # under the settings of now (image, GPUs, resources)
    kfp_client = client(host, namespace)
    try:
        result = kfp_client.create_run_from_pipeline_func(component, arguments=params, run_name=run_name,
                                                          experiment_name=experiment, namespace=namespace)
    except Exception as exc:
        raise PipelineError(f"KFP refused the run: {exc}") from exc
    return str(result.run_id)
