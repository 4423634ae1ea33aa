"""The recurring run of a pipeline on a KFP cluster: six-field cron, one pipeline version per compiled
YAML, the same settings twice change nothing, other settings only with `replace` (KFP cannot update)."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lethe.errors import PipelineError
from lethe.kfp import compiler
from lethe.kfp import host as kfp_host
from lethe.kfp.catalog import build, check_params

CRON_FIELDS = ("second", "minute", "hour", "day of month", "month", "day of week")


def validate_cron(expression: str) -> str:
    """KFP cron expressions have six fields, seconds first ("0 0 2 * * *" is 02:00 every day)."""
    fields = expression.split()
    if len(fields) != len(CRON_FIELDS):
        raise PipelineError(
            f"cron expression {expression!r} has {len(fields)} field(s); KFP needs six: "
            f"{' '.join(CRON_FIELDS)} (e.g. \"0 0 2 * * *\" for 02:00 every day)")
    allowed = set("0123456789*/,-?LW#") | set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    for label, field in zip(CRON_FIELDS, fields, strict=True):
        if not set(field.upper()) <= allowed:
            raise PipelineError(f"cron field {label} {field!r} is not a cron field")
    return " ".join(fields)


@dataclass
class Scheduled:
    """What `schedule` did: `created`, `unchanged`, or `replaced` (`replaced_id` deleted, then the
    new one created; `changes` says what differed)."""

    action: str
    recurring_run_id: str
    job_name: str
    cron: str
    pipeline_version: str
    replaced_id: str | None = None
    changes: tuple[str, ...] = ()


def schedule(name: str, params: Mapping[str, Any] | None, *, host: str, cron: str, job_name: str,
             experiment: str, namespace: str | None = None, max_concurrency: int = 1,
             catchup: bool = False, replace: bool = False) -> Scheduled:
    """Make `job_name` the recurring run (six-field cron, seconds first) of this pipeline as compiled here.

    The pipeline is compiled with this environment's settings (image, GPU, resources, retries) and
    uploaded once as the pipeline version `<pipeline>-<first 12 hex of the YAML's sha256>`. A recurring
    run of that name with the same version, cron, parameters, concurrency and catch-up is left alone
    (`unchanged`); one that differs is refused unless `replace`. KFP cannot update a recurring run, so
    replacing deletes it, then creates the new one: between the two no run of that name is scheduled,
    and when the create fails none is (the error says so; running the command again creates it)."""
    cron = validate_cron(cron)
    params = check_params(name, params)
    kfp_host.check_host(host)
    component = build(name)  # under the settings of now (image, GPUs, resources)
    client = compiler.client(host, namespace)
    with tempfile.TemporaryDirectory(prefix="lethe-pipeline-") as tmp:
        package = compiler.compile_pipeline(name, Path(tmp) / f"{name}.yaml")
        version_name = f"{component.name}-{hashlib.sha256(package.read_bytes()).hexdigest()[:12]}"
        wanted = {"cron": cron, "pipeline version": version_name, "parameters": params,
                  "max concurrency": max_concurrency, "catch-up": catchup}
        try:
            experiment_id = client.create_experiment(name=experiment, namespace=namespace).experiment_id
            existing = _find_recurring_run(client, experiment_id, job_name, namespace)
            current = _settings_of(client, existing) if existing is not None else {}
        except Exception as exc:
            raise PipelineError(f"KFP refused the recurring run: {exc}") from exc
        changes = tuple(f"{key} {current.get(key)!r} -> {value!r}" for key, value in wanted.items()
                        if _plain(current.get(key)) != _plain(value))
        if existing is not None:
            existing_id = str(existing.recurring_run_id)
            if not changes:
                return Scheduled("unchanged", existing_id, job_name, cron, version_name)
            if not replace:
                raise PipelineError(f"recurring run {job_name} ({existing_id}) exists with other settings: "
                                    f"{'; '.join(changes)}. Pass --replace to delete it and create it anew "
                                    "(KFP cannot update a recurring run)")
        try:
            pipeline_id, version_id = _pipeline_version(client, package, component.name, version_name,
                                                        namespace)
        except Exception as exc:
            raise PipelineError(f"KFP refused the pipeline version {version_name}: {exc}; "
                                "nothing was changed") from exc
        if existing is not None:
            try:
                client.delete_recurring_run(existing_id)
            except Exception as exc:
                raise PipelineError(f"KFP refused to delete recurring run {job_name} ({existing_id}): {exc}; "
                                    "nothing was changed") from exc
        try:
            job = client.create_recurring_run(
                experiment_id=experiment_id, job_name=job_name, cron_expression=cron, params=params,
                pipeline_id=pipeline_id, version_id=version_id, max_concurrency=max_concurrency,
                no_catchup=not catchup, enabled=True)
        except Exception as exc:
            gone = (f"; the old recurring run {existing_id} was deleted, so none is scheduled now: "
                    "run the command again" if existing is not None else "")
            raise PipelineError(f"KFP refused the recurring run: {exc}{gone}") from exc
    if existing is None:
        return Scheduled("created", str(job.recurring_run_id), job_name, cron, version_name)
    return Scheduled("replaced", str(job.recurring_run_id), job_name, cron, version_name,
                     replaced_id=existing_id, changes=changes)


def _plain(value: Any) -> Any:
    """Parameters come back from the API as JSON: 50 may read 50.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _settings_of(client: Any, job: Any) -> dict[str, Any]:
    """What `schedule` compares of an existing recurring run (the API's V2beta1RecurringRun)."""
    cron_schedule = getattr(job.trigger, "cron_schedule", None) if job.trigger else None
    reference = job.pipeline_version_reference
    version = "(a pipeline package, no version)"
    if reference is not None and reference.pipeline_version_id:
        found = client.get_pipeline_version(reference.pipeline_id, reference.pipeline_version_id)
        version = found.display_name
    parameters = (job.runtime_config.parameters if job.runtime_config else None) or {}
    return {"cron": cron_schedule.cron if cron_schedule else None, "pipeline version": version,
            "parameters": dict(parameters), "max concurrency": int(job.max_concurrency or 0),
            "catch-up": not job.no_catchup}


def _pipeline_version(client: Any, package: Path, pipeline_name: str, version_name: str,
                      namespace: str | None) -> tuple[str, str]:
    """(pipeline id, version id) of `version_name`, uploaded unless it is there already."""
    pipeline_id = client.get_pipeline_id(pipeline_name)
    if pipeline_id is None:
        pipeline_id = client.upload_pipeline(str(package), pipeline_name=pipeline_name,
                                             namespace=namespace).pipeline_id
    token = ""
    while True:
        page = client.list_pipeline_versions(pipeline_id, page_token=token, page_size=100)
        for version in page.pipeline_versions or []:
            if version.display_name == version_name:
                return pipeline_id, version.pipeline_version_id
        token = page.next_page_token or ""
        if not token:
            break
    version = client.upload_pipeline_version(str(package), pipeline_version_name=version_name,
                                             pipeline_id=pipeline_id)
    return pipeline_id, version.pipeline_version_id


def _find_recurring_run(client: Any, experiment_id: str, job_name: str, namespace: str | None) -> Any | None:
    token = ""
    while True:
        page = client.list_recurring_runs(page_token=token, page_size=100, experiment_id=experiment_id,
                                          namespace=namespace)
        for job in page.recurring_runs or []:
            if job.display_name == job_name:
                return job
        token = page.next_page_token or ""
        if not token:
            return None
