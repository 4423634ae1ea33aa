"""Submitting and scheduling against a KFP API, with the client replaced by a recorder."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

from lethe.errors import PipelineError
from lethe.kfp import compiler
from lethe.kfp.catalog import parse_params, pipeline
from lethe.kfp.scheduler import schedule


class RecordingClient:
    """Stands in for kfp.Client; what it holds (pipelines, versions, recurring runs) is shared, like
    the server's, and shaped like the API's V2beta1 objects."""

    instances: list[RecordingClient] = []
    jobs: list[SimpleNamespace] = []
    versions: list[SimpleNamespace] = []  # of the one pipeline, in upload order
    pipeline_id: str | None = None

    def __init__(self, host: str, namespace: str | None = None) -> None:
        self.host, self.namespace, self.calls = host, namespace, []
        RecordingClient.instances.append(self)

    def create_run_from_pipeline_func(self, func, **kwargs):
        self.calls.append(("run", func, kwargs))
        return SimpleNamespace(run_id="run-123")

    def create_experiment(self, name, namespace=None):
        return SimpleNamespace(experiment_id=f"exp-{name}")

    def list_recurring_runs(self, **kwargs):
        return SimpleNamespace(recurring_runs=list(self.jobs), next_page_token="")

    def get_pipeline_id(self, name):
        return RecordingClient.pipeline_id

    def upload_pipeline(self, path, pipeline_name=None, description=None, namespace=None):
        self.calls.append(("upload_pipeline", pipeline_name))
        RecordingClient.pipeline_id = "pipeline-1"
        self.versions.append(SimpleNamespace(pipeline_version_id="v-0", display_name=pipeline_name))
        return SimpleNamespace(pipeline_id="pipeline-1")

    def list_pipeline_versions(self, pipeline_id, page_token="", page_size=10, **kwargs):
        return SimpleNamespace(pipeline_versions=list(self.versions), next_page_token="")

    def upload_pipeline_version(self, path, pipeline_version_name, pipeline_id=None, **kwargs):
        with open(path) as handle:
            spec = next(yaml.safe_load_all(handle))
        version = SimpleNamespace(pipeline_version_id=f"v-{len(self.versions)}",
                                  display_name=pipeline_version_name, spec=spec)
        self.calls.append(("upload_version", pipeline_version_name))
        self.versions.append(version)
        return version

    def get_pipeline_version(self, pipeline_id, pipeline_version_id):
        return next(v for v in self.versions if v.pipeline_version_id == pipeline_version_id)

    def delete_recurring_run(self, recurring_run_id):
        self.calls.append(("delete", recurring_run_id))
        RecordingClient.jobs = [j for j in self.jobs if j.recurring_run_id != recurring_run_id]

    def create_recurring_run(self, **kwargs):
        self.calls.append(("schedule", kwargs))
        job = SimpleNamespace(
            recurring_run_id=f"job-{len(self.calls)}-{len(self.instances)}", display_name=kwargs["job_name"],
            trigger=SimpleNamespace(cron_schedule=SimpleNamespace(cron=kwargs["cron_expression"])),
            pipeline_version_reference=SimpleNamespace(pipeline_id=kwargs["pipeline_id"],
                                                       pipeline_version_id=kwargs["version_id"]),
            runtime_config=SimpleNamespace(parameters=dict(kwargs["params"])),
            max_concurrency=str(kwargs["max_concurrency"]), no_catchup=kwargs["no_catchup"])
        RecordingClient.jobs.append(job)
        return job


@pytest.fixture
def client(monkeypatch):
    import kfp

    RecordingClient.instances.clear()
    RecordingClient.jobs = []
    RecordingClient.versions = []
    RecordingClient.pipeline_id = None
    monkeypatch.setattr(kfp, "Client", RecordingClient)
    from lethe.kfp import host

    monkeypatch.setattr(host, "check_host", lambda url: url)  # "kfp:8888" is the recording client's
    return RecordingClient


def _schedule(**kwargs):

    args = {"host": "http://kfp:8888", "cron": "0 0 2 * * *", "job_name": "nightly", "experiment": "lethe",
            **kwargs}
    return schedule("scheduled", args.pop("params", {}), **args)


def test_submit_sends_the_pipeline_and_its_parameters(client):
    run_id = compiler.submit("scheduled", {"max_requests": 50}, host="http://kfp:8888", experiment="lethe")
    assert run_id == "run-123"
    (_, func, kwargs), = client.instances[0].calls
    assert func.name == pipeline("scheduled").name  # built anew under this environment's settings
    assert kwargs["arguments"] == {"max_requests": 50} and kwargs["experiment_name"] == "lethe"


def test_schedule_uploads_a_pipeline_version_and_creates_one_recurring_run(client):
    done = _schedule(job_name="lethe-nightly-deletion")
    assert done.action == "created" and done.replaced_id is None
    calls = client.instances[0].calls
    assert [c[0] for c in calls] == ["upload_pipeline", "upload_version", "schedule"]
    kwargs = calls[-1][1]
    assert kwargs["cron_expression"] == "0 0 2 * * *" and kwargs["max_concurrency"] == 1
    assert kwargs["experiment_id"] == "exp-lethe" and kwargs["no_catchup"] is True
    version = client.versions[-1]
    assert (kwargs["pipeline_id"], kwargs["version_id"]) == ("pipeline-1", version.pipeline_version_id)
    assert done.pipeline_version == version.display_name
    assert version.display_name.startswith("lethe-scheduled-deletion-") and len(version.display_name) == 37
    assert version.spec["pipelineInfo"]["name"] == "lethe-scheduled-deletion"
    assert done.recurring_run_id == client.jobs[0].recurring_run_id


def test_scheduling_again_with_the_same_settings_changes_nothing(client):
    first = _schedule()
    again = _schedule()
    assert again.action == "unchanged" and again.recurring_run_id == first.recurring_run_id
    assert len(client.jobs) == 1 and client.instances[1].calls == []  # no upload, no delete


def test_other_settings_are_refused_without_replace_and_change_nothing(client):
    first = _schedule()
    with pytest.raises(PipelineError, match=r"exists with other settings: cron '0 0 2 \* \* \*' -> "
                                            r"'0 30 3 \* \* \*'.*--replace"):
        _schedule(cron="0 30 3 * * *")
    assert [j.recurring_run_id for j in client.jobs] == [first.recurring_run_id]
    assert client.instances[1].calls == []


def test_replace_deletes_then_creates_on_a_new_pipeline_version(client, monkeypatch):

    first = _schedule()
    # A new image changes the compiled pipeline: a new version, and the recurring run must follow.
    monkeypatch.setattr(compiler, "compile_pipeline", _compile_with_image("registry.example/lethe:0.2.0"))
    done = _schedule(replace=True, params={"max_requests": 50})
    assert done.action == "replaced" and done.replaced_id == first.recurring_run_id
    assert [c[0] for c in client.instances[1].calls] == ["upload_version", "delete", "schedule"]
    assert {c.split()[0] for c in done.changes} == {"pipeline", "parameters"}
    (job,) = client.jobs
    assert job.recurring_run_id == done.recurring_run_id != first.recurring_run_id
    assert job.pipeline_version_reference.pipeline_version_id == client.versions[-1].pipeline_version_id
    executors = client.versions[-1].spec["deploymentSpec"]["executors"].values()
    images = {e["container"]["image"] for e in executors}
    assert images == {"registry.example/lethe:0.2.0"}
    assert _schedule(params={"max_requests": 50}).action == "unchanged"  # 50 back as 50.0 is the same


def test_a_failed_create_after_the_delete_says_that_none_is_scheduled(client, monkeypatch):
    _schedule()
    monkeypatch.setattr(RecordingClient, "create_recurring_run",
                        lambda self, **kwargs: (_ for _ in ()).throw(RuntimeError("503")))
    with pytest.raises(PipelineError, match="was deleted, so none is scheduled now"):
        _schedule(cron="0 0 4 * * *", replace=True)
    assert client.jobs == []


def test_schedule_command_prints_what_it_did(client, capsys):
    from lethe.cli import main

    args = ["pipeline", "schedule", "--host", "http://kfp:8888", "--cron", "0 0 2 * * *", "--name", "nightly"]
    assert main(args) == 0
    assert capsys.readouterr().out.startswith("created recurring run nightly (cron '0 0 2 * * *'")
    assert main(args) == 0
    assert "recurring run nightly unchanged" in capsys.readouterr().out
    changed = [*args[:5], "0 0 3 * * *", *args[6:]]
    assert main(changed) == 2
    assert "--replace" in capsys.readouterr().err
    assert main([*changed, "--replace"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("replaced recurring run nightly: deleted ")
    assert "changed: cron '0 0 2 * * *' -> '0 0 3 * * *'" in out
    assert "between the delete and the create" in out


def _compile_with_image(image: str):
    """compile_pipeline, with every executor's image replaced (the image is read at import time)."""
    compile_pipeline = compiler.compile_pipeline

    def compile_with(name, out_path):
        path = compile_pipeline(name, out_path)
        text = path.read_text().replace("ghcr.io/lethe-unlearning/lethe:0.1.0", image)
        path.write_text(text)
        return path

    return compile_with


def test_unknown_pipelines_and_parameters_are_refused_before_contacting_kfp(client):

    with pytest.raises(PipelineError, match="unknown pipeline"):
        compiler.submit("nightly", {}, host="h", experiment="lethe")
    with pytest.raises(PipelineError, match="no parameter"):
        compiler.submit("scheduled", {"forget_everything": True}, host="h", experiment="lethe")
    assert client.instances == []
    assert parse_params("unlearning", ["forget_class=1", "model=x", 'forget_ids=["d"]']) == {
        "forget_class": 1, "model": "x", "forget_ids": ["d"]}
    with pytest.raises(PipelineError):
        parse_params("unlearning", ["novalue"])
