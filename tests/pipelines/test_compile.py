"""The compiled pipelines: GPUs on the steps that pass over data, CPU and memory on every task, retries
where a step is safe to run again, caching only where it is safe, credentials only by reference."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lethe.config import DEFAULT_STEP_RESOURCES, DEFAULT_TASK_RESOURCES, platform_settings
from lethe.errors import ConfigError, PipelineError

SIDE_EFFECTS = {"collect-requests", "prepare-request", "fetch-model", "compute-importances",
                "register-and-gate", "refresh-importances", "finalize-requests", "merge-importances"}
PURE = {"unlearn", "evaluate", "compute-importances-shard", "plan-shards"}
FAKE_SECRET = "s3cr3t-Value-that-must-not-leak"
GPU_STEPS = {"compute-importances", "compute-importances-shard", "refresh-importances", "unlearn", "evaluate",
             "train-reference-model", "retrain"}
# Side effects made idempotent (keyed by content or by the run): retried like the pure steps.
RETRIED = PURE | {"train-reference-model", "prepare-request", "fetch-model", "compute-importances",
                  "merge-importances", "refresh-importances", "register-and-gate"}
NEVER_RETRIED = {"collect-requests", "finalize-requests"}  # a second claim would take other requests


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict, dict, str]]:
    from pipelines.tooling import compile_all

    with pytest.MonkeyPatch.context() as patch:
        # Credentials present in the compiling environment must not end up in the YAML.
        for name in ("AWS_SECRET_ACCESS_KEY", "LETHE_SUBJECT_KEY", "MLFLOW_TRACKING_PASSWORD"):
            patch.setenv(name, FAKE_SECRET)
        patch.setenv("LETHE_LEDGER_URL", f"postgresql://lethe:{FAKE_SECRET}@db/lethe")
        paths = compile_all(tmp_path_factory.mktemp("compiled"))
    out = {}
    for name, path in paths.items():
        text = path.read_text()
        spec, platform = list(yaml.safe_load_all(text))
        out[name] = (spec, platform, text)
    return out


def _tasks(spec: dict) -> dict[str, dict]:
    """Every task of every DAG (root and nested), by task name."""
    found = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        found.update(component.get("dag", {}).get("tasks", {}))
    return found


def _executor_of(spec: dict, task: dict) -> str:
    return spec["components"][task["componentRef"]["name"]]["executorLabel"]


def test_every_pipeline_compiles(compiled):
    from pipelines import PIPELINES

    assert set(compiled) == set(PIPELINES) == {"scheduled", "unlearning", "importances", "reference-models",
                                               "retrain"}


def test_the_passes_over_data_request_one_gpu_and_nothing_else_does(compiled):
    seen = set()
    for _name, (spec, _, _) in compiled.items():
        for executor, body in spec["deploymentSpec"]["executors"].items():
            accelerator = body["container"].get("resources", {}).get("accelerator")
            if executor.removeprefix("exec-") in GPU_STEPS:
                seen.add(executor.removeprefix("exec-"))
                assert accelerator["resourceType"] == "nvidia.com/gpu", executor
                assert str(accelerator["resourceCount"]) == "1", executor
            else:
                assert accelerator is None, executor
    assert seen == GPU_STEPS


def test_every_task_has_cpu_and_memory_requests_and_limits(compiled):
    for name, (spec, _, _) in compiled.items():
        for executor, body in spec["deploymentSpec"]["executors"].items():
            res = body["container"]["resources"]
            step = executor.removeprefix("exec-")
            expected = {**DEFAULT_TASK_RESOURCES, **DEFAULT_STEP_RESOURCES.get(step, {})}
            assert {"cpu_request": res["resourceCpuRequest"], "cpu_limit": res["resourceCpuLimit"],
                    "memory_request": res["resourceMemoryRequest"],
                    "memory_limit": res["resourceMemoryLimit"]} == expected, (name, executor)
    unlearn = compiled["scheduled"][0]["deploymentSpec"]["executors"]["exec-unlearn"]["container"]
    assert unlearn["resources"]["resourceMemoryLimit"] == "16Gi"  # more than a ledger step's 4Gi


def test_only_steps_that_are_safe_to_repeat_are_retried(compiled):
    seen = set()
    for spec, _, _ in compiled.values():
        for task_name, task in _tasks(spec).items():
            if "componentRef" not in task or task_name.startswith(("condition", "exit-handler", "for-loop")):
                continue
            seen.add(task_name)
            policy = task.get("retryPolicy")
            if task_name in RETRIED:
                assert policy["maxRetryCount"] == 2 and policy["backoffDuration"] == "30s", task_name
            else:
                assert policy is None, task_name
    assert seen >= RETRIED | NEVER_RETRIED


def test_local_runs_do_not_retry_and_the_compiled_pipeline_keeps_its_retries(tmp_path):
    from pipelines import PIPELINES
    from pipelines.tooling import _without_retries

    spec = PIPELINES["scheduled"].pipeline_spec

    def policies() -> list[int]:
        dags = [spec.root.dag, *(c.dag for c in spec.components.values() if c.HasField("dag"))]
        return [t.retry_policy.max_retry_count for d in dags for t in d.tasks.values()
                if t.HasField("retry_policy")]

    assert len(policies()) == 5  # importances, unlearn, evaluate, register, refresh
    with _without_retries(PIPELINES["scheduled"]):
        assert policies() == []
    assert policies() == [2] * 5


def test_caching_is_off_for_every_step_with_side_effects(compiled):
    seen = set()
    for spec, _, _ in compiled.values():
        for task_name, task in _tasks(spec).items():
            if "componentRef" not in task or task_name.startswith(("condition", "exit-handler", "for-loop")):
                continue
            enabled = task.get("cachingOptions", {}).get("enableCache", False)
            seen.add(task_name)
            if task_name in SIDE_EFFECTS:
                assert not enabled, task_name
            elif task_name in PURE:
                assert enabled, task_name
    assert seen >= SIDE_EFFECTS | PURE


def test_every_component_names_the_lethe_image_and_calls_lethe_steps(compiled):
    spec, _, _ = compiled["scheduled"]
    for executor, body in spec["deploymentSpec"]["executors"].items():
        assert body["container"]["image"].startswith("ghcr.io/lethe-unlearning/lethe"), executor
        program = "\n".join(body["container"]["command"])
        assert "from lethe.steps" in program, executor
        assert "pip install" not in program, executor  # the image has everything


def test_the_image_is_configurable(tmp_path):
    import os
    import subprocess
    import sys

    # The image is read when the components are imported: compile in a fresh interpreter.
    out = tmp_path / "scheduled.yaml"
    env = {**os.environ, "LETHE_IMAGE": "registry.example/lethe:cuda-test"}
    subprocess.run([sys.executable, "-c", "import sys; from pipelines.tooling import compile_pipeline; "
                    "compile_pipeline('scheduled', sys.argv[1])", str(out)],
                   env=env, check=True, cwd=Path(__file__).resolve().parents[2])
    spec = next(yaml.safe_load_all(out.read_text()))
    images = {body["container"]["image"] for body in spec["deploymentSpec"]["executors"].values()}
    assert images == {"registry.example/lethe:cuda-test"}


def test_credentials_come_from_secrets_by_reference_only(compiled):
    from components.platform import CONFIG_MAP, SECRETS

    for name, (_spec, platform, text) in compiled.items():
        assert FAKE_SECRET not in text, name
        executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        for executor, config in executors.items():
            assert config["configMapAsEnv"][0]["configMapName"] == CONFIG_MAP
            for secret in config.get("secretAsEnv", []):
                assert secret["secretName"] in SECRETS
                keys = {entry["secretKey"]: entry["envVar"] for entry in secret["keyToEnv"]}
                assert keys == SECRETS[secret["secretName"]], executor
    scheduled = compiled["scheduled"][1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    ledger_steps = {"exec-collect-requests", "exec-finalize-requests"}
    for executor in ledger_steps:
        env = {e["envVar"] for s in scheduled[executor]["secretAsEnv"] for e in s["keyToEnv"]}
        assert {"LETHE_LEDGER_URL", "LETHE_SUBJECT_KEY", "AWS_SECRET_ACCESS_KEY"} <= env
    # The GPU step handles no credential at all.
    assert "secretAsEnv" not in scheduled["exec-unlearn"]


def test_the_scheduled_pipeline_settles_requests_in_an_exit_handler(compiled):
    spec, _, _ = compiled["scheduled"]
    root = spec["root"]["dag"]["tasks"]
    finalize = root["finalize-requests"]
    assert finalize["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert "status" in finalize["inputs"]["parameters"]  # PipelineTaskFinalStatus
    assert set(root) == {"exit-handler-1", "finalize-requests"}
    body = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    condition = body["condition-2"]["triggerPolicy"]["condition"]
    assert "collect-requests-Output" in condition and "> 0" in condition


def test_placement_resources_and_retries_come_from_the_environment(tmp_path, monkeypatch):
    env = {"LETHE_GPU_STEPS": "unlearn", "LETHE_RETRIES": "0", "LETHE_CPU_LIMIT": "3",
           "LETHE_STEP_RESOURCES": '{"unlearn": {"memory_request": "8Gi", "memory_limit": "32Gi"}}'}
    path = _compile_scheduled_with(env, tmp_path / "s.yaml", monkeypatch)
    spec = next(yaml.safe_load_all(path.read_text()))
    executors = spec["deploymentSpec"]["executors"]
    gpus = {e for e, body in executors.items() if "accelerator" in body["container"]["resources"]}
    assert gpus == {"exec-unlearn"}
    unlearn = executors["exec-unlearn"]["container"]["resources"]
    assert (unlearn["resourceMemoryRequest"], unlearn["resourceMemoryLimit"]) == ("8Gi", "32Gi")
    assert unlearn["resourceCpuLimit"] == "3"  # not in the step's entry: the default for every task
    evaluate = executors["exec-evaluate"]["container"]["resources"]
    assert (evaluate["resourceCpuLimit"], evaluate["resourceMemoryLimit"]) == ("3", "4Gi")
    assert not [t for t in _tasks(spec).values() if "retryPolicy" in t]


@pytest.mark.parametrize(("env", "message"), [
    ({"LETHE_CPU_REQUEST": "4", "LETHE_CPU_LIMIT": "2"}, "above cpu_limit"),
    ({"LETHE_MEMORY_LIMIT": "4GB"}, "memory_limit"),
    ({"LETHE_STEP_RESOURCES": '{"unlearn": {"gpu": "1"}}'}, "unknown resource key"),
    ({"LETHE_STEP_RESOURCES": "unlearn=8Gi"}, "not JSON"),
    ({"LETHE_RETRIES": "-1"}, "LETHE_RETRIES"),
])
def test_bad_platform_settings_are_refused(env, message, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        platform_settings().resources_for("unlearn")


def test_a_misspelt_gpu_step_is_refused_when_the_pipeline_is_built(monkeypatch):
    from kfp import dsl

    from components import plan_shards
    from components.platform import configure

    monkeypatch.setenv("LETHE_GPU_STEPS", "unlern,evaluate")
    with pytest.raises(PipelineError, match="unknown step.*unlern"):
        @dsl.pipeline(name="misspelt")
        def misspelt():  # no annotation: this module has `from __future__ import annotations`
            configure(plan_shards(num_shards=2), needs="none", cache=True)


def test_reference_models_train_in_a_parallel_for_and_merge_once(compiled):
    spec, _, _ = compiled["reference-models"]
    root = spec["root"]["dag"]["tasks"]
    loop = next(task for name, task in root.items() if name.startswith("for-loop"))
    assert "plan-reference-models" in loop["dependentTasks"]
    body = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    assert set(body) == {"train-reference-model"}
    merge = root["merge-reference-models"]
    assert "plan-reference-models" in merge["dependentTasks"]
    assert "for-loop" in str(merge["inputs"]["artifacts"]["references"])  # collected from the loop


def test_the_retrain_pipeline_evaluates_and_gates_the_retrained_model(compiled):
    spec, _, _ = compiled["retrain"]
    root = spec["root"]["dag"]["tasks"]
    assert set(root) == {"retrain", "evaluate", "register-retrained"}
    assert set(root["register-retrained"]["dependentTasks"]) == {"retrain", "evaluate"}


def _rebuild_pipelines() -> None:
    """A @dsl.pipeline is built when its module is imported: rebuild them under the current env."""
    import importlib

    import pipelines
    import pipelines.scheduled
    import pipelines.stages

    importlib.reload(pipelines.stages)
    importlib.reload(pipelines.scheduled)
    pipelines.PIPELINES["scheduled"] = pipelines.scheduled.scheduled_deletion_pipeline


def _compile_scheduled_with(env: dict[str, str], path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The scheduled pipeline compiled with `env` set; the pipelines are rebuilt without it after."""
    from pipelines.tooling import compile_pipeline

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        _rebuild_pipelines()
        return compile_pipeline("scheduled", path)
    finally:
        for name in env:
            monkeypatch.delenv(name)
        _rebuild_pipelines()


def test_gpu_placement_comes_from_the_environment(tmp_path, monkeypatch):
    env = {"LETHE_GPU_NODE_SELECTOR": "cloud.google.com/gke-accelerator=nvidia-l4",
           "LETHE_GPU_TOLERATION": "nvidia.com/gpu:NoSchedule"}
    path = _compile_scheduled_with(env, tmp_path / "s.yaml", monkeypatch)
    platform = list(yaml.safe_load_all(path.read_text()))[1]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for step in ("unlearn", "compute-importances", "evaluate"):
        placed = executors[f"exec-{step}"]
        assert placed["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}, step
        assert placed["tolerations"][0] == {"key": "nvidia.com/gpu", "operator": "Exists",
                                            "effect": "NoSchedule"}, step
    assert "nodeSelector" not in executors["exec-collect-requests"]


def test_no_gpu_when_the_limit_is_zero(tmp_path, monkeypatch):
    path = _compile_scheduled_with({"LETHE_GPU_LIMIT": "0"}, tmp_path / "s.yaml", monkeypatch)
    executors = yaml.safe_load_all(path.read_text()).__next__()["deploymentSpec"]["executors"]
    assert not [e for e, body in executors.items() if "accelerator" in body["container"]["resources"]]
    assert executors["exec-unlearn"]["container"]["resources"]["resourceMemoryLimit"] == "16Gi"


@pytest.mark.parametrize("text", ["nvidia.com/gpu", "gpu=yes:Sometimes", ":NoSchedule"])
def test_bad_tolerations_are_refused(text):
    from components.platform import parse_toleration

    with pytest.raises(PipelineError):
        parse_toleration(text)


def test_cron_needs_six_fields():
    from pipelines.tooling import validate_cron

    assert validate_cron(" 0 0 2 * * * ") == "0 0 2 * * *"
    with pytest.raises(PipelineError, match="six"):
        validate_cron("0 2 * * *")
    with pytest.raises(PipelineError, match="field"):
        validate_cron("0 0 2 * * $(id)")


def test_compile_command_writes_every_yaml(tmp_path):
    from lethe.cli import main
    from pipelines import PIPELINES

    assert main(["pipeline", "compile", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == sorted(f"{name}.yaml" for name in PIPELINES)


def test_schedule_command_refuses_a_five_field_cron_before_contacting_kfp(capsys):
    from lethe.cli import main

    # An unreachable host: a five-field cron must fail before any connection is tried.
    code = main(["pipeline", "schedule", "--host", "http://127.0.0.1:9", "--cron", "0 2 * * *",
                 "--name", "nightly"])
    assert code == 2
    assert "six" in capsys.readouterr().err
