"""The compiled pipelines: GPU on unlearn, caching only where it is safe, credentials only by reference."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.platform import CONFIG_MAP, SECRETS, parse_toleration
from lethe.errors import PipelineError
from pipelines import PIPELINES
from pipelines.tooling import compile_all, compile_pipeline, validate_cron

SIDE_EFFECTS = {"collect-requests", "prepare-request", "fetch-model", "compute-importances",
                "register-and-gate", "refresh-importances", "finalize-requests", "merge-importances"}
PURE = {"unlearn", "evaluate", "compute-importances-shard", "plan-shards"}
FAKE_SECRET = "s3cr3t-Value-that-must-not-leak"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict, dict, str]]:
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
    assert set(compiled) == set(PIPELINES) == {"scheduled", "unlearning", "importances"}


def test_unlearn_requests_one_gpu_and_nothing_else_does(compiled):
    for _name, (spec, _, _) in compiled.items():
        for executor, body in spec["deploymentSpec"]["executors"].items():
            accelerator = body["container"].get("resources", {}).get("accelerator")
            if executor == "exec-unlearn":
                assert accelerator["resourceType"] == "nvidia.com/gpu"
                assert str(accelerator["resourceCount"]) == "1"
            else:
                assert accelerator is None, executor


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
    unlearn = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-unlearn"]
    assert unlearn["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert unlearn["tolerations"][0] == {"key": "nvidia.com/gpu", "operator": "Exists",
                                         "effect": "NoSchedule"}


def test_no_gpu_when_the_limit_is_zero(tmp_path, monkeypatch):
    path = _compile_scheduled_with({"LETHE_GPU_LIMIT": "0"}, tmp_path / "s.yaml", monkeypatch)
    executors = yaml.safe_load_all(path.read_text()).__next__()["deploymentSpec"]["executors"]
    assert "resources" not in executors["exec-unlearn"]["container"]


@pytest.mark.parametrize("text", ["nvidia.com/gpu", "gpu=yes:Sometimes", ":NoSchedule"])
def test_bad_tolerations_are_refused(text):
    with pytest.raises(PipelineError):
        parse_toleration(text)


def test_cron_needs_six_fields():
    assert validate_cron(" 0 0 2 * * * ") == "0 0 2 * * *"
    with pytest.raises(PipelineError, match="six"):
        validate_cron("0 2 * * *")
    with pytest.raises(PipelineError, match="field"):
        validate_cron("0 0 2 * * $(id)")


def test_compile_command_writes_every_yaml(tmp_path):
    from lethe.cli import main

    assert main(["pipeline", "compile", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["importances.yaml", "scheduled.yaml",
                                                                 "unlearning.yaml"]


def test_schedule_command_refuses_a_five_field_cron_before_contacting_kfp(capsys):
    from lethe.cli import main

    # An unreachable host: a five-field cron must fail before any connection is tried.
    code = main(["pipeline", "schedule", "--host", "http://127.0.0.1:9", "--cron", "0 2 * * *",
                 "--name", "nightly"])
    assert code == 2
    assert "six" in capsys.readouterr().err
