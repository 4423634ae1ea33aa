"""Submitting and scheduling against a KFP API, with the client replaced by a recorder."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

from lethe.errors import PipelineError
from pipelines import tooling


class RecordingClient:
    """Stands in for kfp.Client; the recurring runs it holds are shared, like the server's."""

    instances: list[RecordingClient] = []
    jobs: list[SimpleNamespace] = []

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

    def create_recurring_run(self, **kwargs):
        with open(kwargs["pipeline_package_path"]) as handle:
            kwargs["spec"] = next(yaml.safe_load_all(handle))
        self.calls.append(("schedule", kwargs))
        job = SimpleNamespace(recurring_run_id="job-1", display_name=kwargs["job_name"])
        RecordingClient.jobs.append(job)
        return job


@pytest.fixture
def client(monkeypatch):
    import kfp

    RecordingClient.instances.clear()
    RecordingClient.jobs.clear()
    monkeypatch.setattr(kfp, "Client", RecordingClient)
    return RecordingClient


def test_submit_sends_the_pipeline_and_its_parameters(client):
    run_id = tooling.submit("scheduled", {"max_requests": 50}, host="http://kfp:8888", experiment="lethe")
    assert run_id == "run-123"
    (_, func, kwargs), = client.instances[0].calls
    assert func is tooling.PIPELINES["scheduled"]
    assert kwargs["arguments"] == {"max_requests": 50} and kwargs["experiment_name"] == "lethe"


def test_schedule_creates_one_recurring_run_with_a_six_field_cron(client):
    job = tooling.schedule("scheduled", {}, host="http://kfp:8888", cron="0 0 2 * * *",
                           job_name="lethe-nightly-deletion", experiment="lethe")
    assert job == "job-1"
    (_, kwargs), = client.instances[0].calls
    assert kwargs["cron_expression"] == "0 0 2 * * *" and kwargs["max_concurrency"] == 1
    assert kwargs["experiment_id"] == "exp-lethe" and kwargs["no_catchup"] is True
    assert kwargs["spec"]["pipelineInfo"]["name"] == "lethe-scheduled-deletion"


def test_scheduling_again_under_the_same_name_changes_nothing(client):
    first = tooling.schedule("scheduled", {}, host="h", cron="0 0 2 * * *", job_name="nightly",
                             experiment="lethe")
    again = tooling.schedule("scheduled", {}, host="h", cron="0 0 2 * * *", job_name="nightly",
                             experiment="lethe")
    assert again == first and len(client.jobs) == 1
    assert client.instances[1].calls == []


def test_unknown_pipelines_and_parameters_are_refused_before_contacting_kfp(client):
    with pytest.raises(PipelineError, match="unknown pipeline"):
        tooling.submit("nightly", {}, host="h", experiment="lethe")
    with pytest.raises(PipelineError, match="no parameter"):
        tooling.submit("scheduled", {"forget_everything": True}, host="h", experiment="lethe")
    assert client.instances == []
    assert tooling.parse_params(["a=1", "b=x", 'c=["d"]']) == {"a": 1, "b": "x", "c": ["d"]}
    with pytest.raises(PipelineError):
        tooling.parse_params(["novalue"])
