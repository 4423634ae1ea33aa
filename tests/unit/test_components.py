"""Each KFP component's python_func (its body as it runs in the container) on digits, in process,
and the contract every step row (components/step.py) keeps, for every row found by discovery.

The chain prepare → importances → unlearn → evaluate → register shares module-scoped artifacts.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from components.platform import STORE_SECRETS, secrets_of
from components.requests import collect_requests, finalize_requests, prepare_request, settle_requests
from components.step import STORES, Step, step_rows
from components.training_set_importances import (
    compute_importances,
    compute_importances_shard,
    fetch_model,
    merge_importances,
    plan_shards,
    refresh_importances,
)
from components.unlearning import evaluate, register_and_gate, unlearn
from lethe.models import read_card
from tests.pipelines.helpers import file_requests, lethe_home, register_champion, states

if TYPE_CHECKING:
    from kfp.dsl import Artifact

pytestmark = pytest.mark.slow  # every component runs on digits, most through MLflow
SUBJECTS = ["subject-00001", "subject-00002"]
ROWS = list(step_rows().values())


def test_every_component_of_the_package_has_a_row():
    import importlib
    import pkgutil

    from kfp.dsl.base_component import BaseComponent

    import components

    found = set()
    for module in pkgutil.iter_modules(components.__path__, prefix="components."):
        for value in vars(importlib.import_module(module.name)).values():
            if isinstance(value, BaseComponent):
                found.add(value.component_spec.name)
                assert step_rows()[value.component_spec.name].component is value
    assert found == set(step_rows())  # discovery finds them all, and nothing else


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
def test_each_row_is_a_consistent_declaration(row: Step):
    assert set(row.stores) <= set(STORES) and row.display_name
    if row.cache:  # a cached result would skip the side effect: only pure steps are cached
        assert not {"ledger", "registry"} & set(row.stores), row
    if "ledger" in row.stores:  # a second claim would take other requests; the exit task runs once
        assert not row.retry, row
    assert set(secrets_of(row)) == {s for store in row.stores for s in STORE_SECRETS[store]}
    # A thin wrapper: its body delegates to the library at once.
    body = inspect.getsource(row.component.python_func)
    assert "from lethe.steps" in body or "from components.adapters" in body


def _artifact(kind: type, path: Path) -> Artifact:
    return kind(name=path.name, uri=str(path), metadata={})


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, digits_convnet_dir: Path):
    with lethe_home(tmp_path_factory.mktemp("components") / "lethe") as root:
        register_champion(digits_convnet_dir)
        yield root


@pytest.fixture(scope="module")
def prepared(home: Path) -> dict:
    from kfp.dsl import Artifact, Model


    work = home / "work"
    forget, parent = _artifact(Artifact, work / "forget"), _artifact(Model, work / "parent")
    count = prepare_request.python_func(
        model="champion", dataset="", forget_ids=[], forget_subjects=SUBJECTS, forget_class=-1,
        scenario="subject", subject_map="", forget=forget, parent=parent)
    return {"count": count, "forget": forget, "parent": parent}


@pytest.fixture(scope="module")
def importances(home: Path, prepared: dict) -> dict:
    from kfp.dsl import Artifact


    out = _artifact(Artifact, home / "work" / "importances")
    cached = compute_importances.python_func(model=prepared["parent"], dataset="", batch_size=128,
                                             method="lfssd", importances=out)
    return {"cached": cached, "artifact": out}


@pytest.fixture(scope="module")
def candidate(home: Path, prepared: dict, importances: dict) -> dict:
    from kfp.dsl import Model


    out = _artifact(Model, home / "work" / "candidate")
    alpha = unlearn.python_func(model=prepared["parent"], forget=prepared["forget"],
                                importances=importances["artifact"], dataset="", batch_size=128,
                                alpha="3", cutoff="block3", lam=1.0, method="lfssd",
                                thresholds="{subject: {member_rate_gap_max: 0.04}}", candidate=out)
    return {"alpha": alpha, "artifact": out}


@pytest.fixture(scope="module")
def evaluation(home: Path, prepared: dict, candidate: dict) -> dict:
    from kfp.dsl import HTML, Artifact, Metrics


    work = home / "work"
    evaluation, report, metrics = (_artifact(Artifact, work / "evaluation"), _artifact(HTML, work / "report"),
                                   _artifact(Metrics, work / "metrics"))
    decision = evaluate.python_func(candidate=candidate["artifact"], parent=prepared["parent"],
                                    forget=prepared["forget"], dataset="", thresholds="",
                                    evaluation=evaluation, report=report, metrics=metrics)
    return {"decision": decision, "evaluation": evaluation, "report": report, "metrics": metrics}


def test_prepare_request_fetches_the_champion_and_resolves_subjects(prepared, digits_convnet_dir):
    assert prepared["count"] == 20  # two synthetic subjects of ten samples
    spec = json.loads((Path(prepared["forget"].path) / "forget.json").read_text())
    assert len(spec["sample_ids"]) == 20 and spec["parent"]["version"] == "1"
    assert not any(subject in json.dumps(spec) for subject in SUBJECTS)
    assert read_card(prepared["parent"].path).fingerprint == read_card(digits_convnet_dir).fingerprint
    assert prepared["parent"].metadata["version"] == "1"


def test_fetch_model(home, tmp_path, digits_convnet_dir):
    from kfp.dsl import Model


    out = _artifact(Model, tmp_path / "fetched")
    fingerprint = fetch_model.python_func(model="models:/lethe-classifier/1", fetched=out)
    assert fingerprint == read_card(digits_convnet_dir).fingerprint == read_card(out.path).fingerprint


def test_compute_importances_fills_then_reads_the_cache(home, prepared, importances, tmp_path):
    from kfp.dsl import Artifact


    assert importances["cached"] is False
    assert importances["artifact"].metadata["num_samples"] == 1438
    again = _artifact(Artifact, tmp_path / "again")
    assert compute_importances.python_func(model=prepared["parent"], dataset="", batch_size=128,
                                           method="lfssd", importances=again) is True
    assert again.metadata["sha256"] == importances["artifact"].metadata["sha256"]


def test_shard_and_merge_components(home, prepared, tmp_path):
    from kfp.dsl import Artifact

    shards = plan_shards.python_func(num_shards=2)
    assert shards == [0, 1]
    outputs = [_artifact(Artifact, tmp_path / f"shard{k}") for k in shards]
    for k, out in zip(shards, outputs, strict=True):
        assert compute_importances_shard.python_func(
            model=prepared["parent"], dataset="", batch_size=64, method="lfssd", shard_index=k,
            num_shards=2, shard=out) is False
    merged = _artifact(Artifact, tmp_path / "merged")
    merge = merge_importances.python_func
    assert merge(model=prepared["parent"], dataset="", batch_size=64, method="lfssd", shards=outputs,
                 importances=merged) is False
    assert merged.metadata["num_batches"] == 23 and merged.metadata["batch_size"] == 64


def test_unlearn_writes_a_candidate_with_its_dampening_report(prepared, candidate):
    assert candidate["alpha"] == 3.0
    out = Path(candidate["artifact"].path)
    report = json.loads((out / "dampening.json").read_text())
    assert report["alpha"] == 3.0 and report["forget_size"] == 20 and report["total_selected"] > 0
    assert read_card(out).fingerprint != read_card(prepared["parent"].path).fingerprint
    assert candidate["artifact"].metadata["total_selected"] == report["total_selected"]
    # Where dampening may act and the gate's limits (inline YAML, as a pipeline passes them) reach the step.
    assert report["cutoff"] == candidate["artifact"].metadata["cutoff"] == "block3"
    touched = {name for name, count in report["selected"].items() if count}
    assert touched and all(name.startswith(("features.8.", "features.9.", "classifier.")) for name in touched)
    assert report["dampened_parameters"] and "features.0.weight" not in report["dampened_parameters"]
    assert report["target"]["limit"] == 0.04


def test_evaluate_writes_metrics_report_and_the_gate(evaluation):
    assert evaluation["decision"] in ("pass", "review")
    metrics = json.loads((Path(evaluation["evaluation"].path) / "metrics.json").read_text())
    assert metrics["gate"]["decision"] == evaluation["decision"]
    assert "<html" in Path(evaluation["report"].path).read_text()[:2000].lower()
    logged = evaluation["metrics"].metadata
    assert logged["candidate_forget_accuracy"] == metrics["candidate"]["forget_accuracy"]


def test_register_and_gate_records_version_and_outcome(home, prepared, importances, candidate, evaluation):
    from kfp.dsl import Artifact

    from lethe.registry import Registry
    from lethe.steps.outcome import read_outcome

    registered = _artifact(Artifact, home / "work" / "registered")
    decision = register_and_gate.python_func(
        candidate=candidate["artifact"], evaluation=evaluation["evaluation"], forget=prepared["forget"],
        importances=importances["artifact"], run_id="run-components", model_name="", registered=registered)
    expected = "pass" if evaluation["decision"] == "pass" else "review"
    assert decision == expected
    assert Path(registered.path).read_text().strip() == "2" == registered.metadata["version"]
    registry = Registry()
    assert (registry.champion_version() == "2") == (decision == "pass")
    version = registry.version("2")
    assert version.parent_version == "1"
    assert version.tags["lethe.importances_sha256"] == importances["artifact"].metadata["sha256"]
    outcome = read_outcome("run-components")
    assert (outcome.version, outcome.decision, outcome.request_ids) == ("2", decision, [])


def test_refresh_importances_computes_once_per_model(home, candidate):
    refresh = refresh_importances.python_func
    assert refresh(model=candidate["artifact"], dataset="", batch_size=128, method="lfssd") is False
    assert refresh(model=candidate["artifact"], dataset="", batch_size=128, method="lfssd") is True


def test_collect_and_finalize_components(home, tmp_path):
    from kfp import dsl
    from kfp.dsl import Artifact, Model


    ids = file_requests(["subject-00005", "subject-00006"])
    forget, parent = _artifact(Artifact, tmp_path / "forget"), _artifact(Model, tmp_path / "parent")
    count = collect_requests.python_func(run_id="run-cf", dataset="", model_name="", max_requests=0,
                                         subject_map="", forget=forget, parent=parent)
    assert count == 2 and forget.metadata["num_samples"] == 20
    assert {states()[i] for i in ids} == {"in_progress"}
    status = dsl.PipelineTaskFinalStatus(state="FAILED", pipeline_job_resource_name="run-cf",
                                         pipeline_task_name="exit-handler-1", error_code=1,
                                         error_message="Task unlearn failed.")
    # No outcome recorded (the run failed before its gate): the settle task changes nothing...
    assert "the exit task releases 2" in settle_requests.python_func(run_id="run-cf")
    assert {states()[i] for i in ids} == {"in_progress"}
    # ...and the exit task gives them back.
    summary = finalize_requests.python_func(run_id="run-cf", status=status)
    assert "0 fulfilled" in summary and "2 back to pending" in summary
    assert {states()[i] for i in ids} == {"pending"}


@pytest.mark.parametrize(("bad", "words"), [({"alpha": "banana"}, "alpha must be a positive number"),
                                            ({"lam": float("nan")}, "lam must be a finite number"),
                                            ({"thresholds": "class: ["}, "thresholds"),
                                            ({"batch_size": 0}, "batch_size")])
def test_collect_refuses_a_bad_run_parameter_before_it_claims(home, tmp_path, bad, words):
    """A run started from the KFP UI was never checked by the CLI: collect checks every parameter."""
    from kfp.dsl import Artifact, Model

    from lethe.errors import PipelineError

    ids = file_requests(["subject-00007"])
    before = states()
    forget, parent = _artifact(Artifact, tmp_path / "forget"), _artifact(Model, tmp_path / "parent")
    with pytest.raises(PipelineError, match=words):
        collect_requests.python_func(run_id="run-bad", dataset="", model_name="", max_requests=0,
                                     subject_map="", forget=forget, parent=parent, **bad)
    assert states() == before and before[ids[0]] == "pending"  # nothing claimed
    assert not (tmp_path / "forget").exists() and not (tmp_path / "parent").exists()
    from lethe.ledger import Ledger

    Ledger().cancel(ids[0], reason="test over")  # the module's other tests claim what is pending


def test_the_settle_task_fulfils_on_the_gates_outcome_and_the_exit_task_finds_nothing_left(home):
    from kfp import dsl

    from lethe.ledger import Ledger
    from lethe.steps.outcome import write_outcome

    ids = file_requests(["subject-00005"])
    Ledger().claim("run-st")
    write_outcome("run-st", {"decision": "pass", "version": "3", "model_name": "m", "request_ids": ids,
                             "gate": {"decision": "pass", "reasons": []}})
    assert "1 fulfilled" in settle_requests.python_func(run_id="run-st")
    assert states()[ids[0]] == "fulfilled" and Ledger().get(ids[0]).model_version == "3"
    assert settle_requests.python_func(run_id="run-st").endswith("no request to settle")  # a retry
    status = dsl.PipelineTaskFinalStatus(state="SUCCEEDED", pipeline_job_resource_name="run-st",
                                         pipeline_task_name="exit-handler-1", error_code=0, error_message="")
    assert "no request to settle" in finalize_requests.python_func(run_id="run-st", status=status)
    assert states()[ids[0]] in {"fulfilled", "complete"}  # the exit task's retention may complete it
