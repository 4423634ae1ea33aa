"""The compiled pipelines: each task is what its step's row declares (GPUs, CPU and memory, retries,
caching, credentials by reference only, display name), for every row, found by discovery; and the
deployment's placement variables change what they say.

No `from __future__ import annotations`: KFP reads the toy component's annotations as types."""

from pathlib import Path

import pytest
import yaml

from components.platform import CONFIG_MAP, SECRETS, secrets_of
from components.step import Step, step_rows
from lethe.config import DEFAULT_TASK_RESOURCES, parse_toleration, platform_settings
from lethe.errors import ConfigError, PipelineError

FAKE_SECRET = "s3cr3t-Value-that-must-not-leak"
CUDA_IMAGE = "registry.example/lethe:cuda-test"
ROWS = list(step_rows().values())


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict, dict, str]]:
    from lethe.kfp.compiler import compile_all

    with pytest.MonkeyPatch.context() as patch:
        # Credentials present in the compiling environment must not end up in the YAML.
        for name in ("AWS_SECRET_ACCESS_KEY", "LETHE_SUBJECT_KEY", "MLFLOW_TRACKING_PASSWORD"):
            patch.setenv(name, FAKE_SECRET)
        patch.setenv("LETHE_LEDGER_URL", f"postgresql://lethe:{FAKE_SECRET}@db/lethe")
        patch.setenv("LETHE_CUDA_IMAGE", CUDA_IMAGE)  # a GPU only with a GPU image
        paths = compile_all(tmp_path_factory.mktemp("compiled"))
    out = {}
    for name, path in paths.items():
        text = path.read_text()
        spec, platform = list(yaml.safe_load_all(text))
        out[name] = (spec, platform, text)
    return out


def _tasks(spec: dict) -> dict[str, dict]:
    """Every task of every DAG (root and nested) that runs a component, by task name."""
    found = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        found.update(component.get("dag", {}).get("tasks", {}))
    return {name: task for name, task in found.items()
            if "executorLabel" in spec["components"][task["componentRef"]["name"]]}


def _executor_of(spec: dict, task: dict) -> str:
    return spec["components"][task["componentRef"]["name"]]["executorLabel"]


def _step_of(executor: str) -> str:
    """The step an executor runs: KFP numbers the second and later uses of a component (`exec-evaluate-2`)."""
    name = executor.removeprefix("exec-")
    base, _, number = name.rpartition("-")
    return base if name not in step_rows() and number.isdigit() and base in step_rows() else name


def _tasks_of(compiled: dict, row: Step) -> list[tuple[dict, dict, dict]]:
    """(task, executor, kubernetes platform config) of every compiled task that runs `row`'s step."""
    found = []
    for spec, platform, _ in compiled.values():
        k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        for task in _tasks(spec).values():
            executor = _executor_of(spec, task)
            if _step_of(executor) == row.name:
                found.append((task, spec["deploymentSpec"]["executors"][executor], k8s[executor]))
    return found


def test_every_pipeline_compiles_and_every_task_runs_a_declared_step(compiled):
    from pipelines import PIPELINES

    assert set(compiled) == set(PIPELINES)
    for name, (spec, _, _) in compiled.items():
        for task_name, task in _tasks(spec).items():
            assert _step_of(_executor_of(spec, task)) in step_rows(), (name, task_name)


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
def test_each_task_is_what_its_row_declares(compiled, row: Step):
    tasks = _tasks_of(compiled, row)
    assert tasks, f"step {row.name} is wired into no pipeline"
    expected_resources = {**DEFAULT_TASK_RESOURCES, **row.resources}
    for task, executor, k8s in tasks:
        assert task["taskInfo"]["name"] == row.display_name
        assert task.get("cachingOptions", {}).get("enableCache", False) == row.cache
        policy = task.get("retryPolicy")
        if row.retry:
            assert policy["maxRetryCount"] == 2 and policy["backoffDuration"] == "30s"
        else:
            assert policy is None
        resources = executor["container"]["resources"]
        assert {"cpu_request": resources["resourceCpuRequest"], "cpu_limit": resources["resourceCpuLimit"],
                "memory_request": resources["resourceMemoryRequest"],
                "memory_limit": resources["resourceMemoryLimit"]} == expected_resources
        accelerator = resources.get("accelerator")
        if row.gpu:
            assert (accelerator["resourceType"], str(accelerator["resourceCount"])) == ("nvidia.com/gpu", "1")
            assert executor["container"]["image"] == CUDA_IMAGE
        else:
            assert accelerator is None
            assert executor["container"]["image"] != CUDA_IMAGE
        assert k8s["configMapAsEnv"][0]["configMapName"] == CONFIG_MAP
        mounted = [secret["secretName"] for secret in k8s.get("secretAsEnv", [])]
        assert mounted == list(secrets_of(row))
        # The body delegates to the library at once (the image has everything, nothing is installed).
        program = "\n".join(executor["container"]["command"])
        assert "from lethe.steps" in program or "from components.adapters" in program
        assert "pip install" not in program
        # Every task starts through lethe's task entry, which runs KFP's executor.
        assert "python3 -m components.task_entry -m kfp.dsl.executor_main" in program


def test_a_data_pass_gets_more_memory_than_a_ledger_step(compiled):
    unlearn = compiled["scheduled"][0]["deploymentSpec"]["executors"]["exec-unlearn"]["container"]
    collect = compiled["scheduled"][0]["deploymentSpec"]["executors"]["exec-collect-requests"]["container"]
    assert (unlearn["resources"]["resourceMemoryLimit"], collect["resources"]["resourceMemoryLimit"]) == \
        ("16Gi", "4Gi")


def test_local_runs_do_not_retry_and_are_otherwise_the_compiled_pipeline():
    from lethe.kfp.local import local_pipeline

    def without_retries(spec):
        spec = type(spec).FromString(spec.SerializeToString())
        dags = [spec.root.dag, *(c.dag for c in spec.components.values() if c.HasField("dag"))]
        retried = 0
        for dag in dags:
            for task in dag.tasks.values():
                retried += task.HasField("retry_policy")
                task.ClearField("retry_policy")
        return spec, retried

    from lethe.kfp.catalog import build, pipeline_names

    for name in pipeline_names():  # each built under this environment, as compile builds it
        compiled_spec, retried = without_retries(build(name).pipeline_spec)
        local_spec, retried_locally = without_retries(local_pipeline(name).pipeline_spec)
        assert retried > 0 and retried_locally == 0, name
        assert local_spec == compiled_spec, name


def test_credentials_come_from_secrets_by_reference_only(compiled):
    for name, (_spec, platform, text) in compiled.items():
        assert FAKE_SECRET not in text, name
        executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        for executor, config in executors.items():
            for secret in config.get("secretAsEnv", []):
                keys = {entry["secretKey"]: entry["envVar"] for entry in secret["keyToEnv"]}
                assert keys == SECRETS[secret["secretName"]], executor


def test_the_image_is_configurable(tmp_path):
    import os
    import subprocess
    import sys

    # The image is read when the components are imported: compile in a fresh interpreter.
    out = tmp_path / "scheduled.yaml"
    env = {**os.environ, "LETHE_IMAGE": "registry.example/lethe:cuda-test"}
    subprocess.run([sys.executable, "-c", "import sys; from lethe.kfp.compiler import compile_pipeline; "
                    "compile_pipeline('scheduled', sys.argv[1])", str(out)],
                   env=env, check=True, cwd=Path(__file__).resolve().parents[2])
    spec = next(yaml.safe_load_all(out.read_text()))
    images = {body["container"]["image"] for body in spec["deploymentSpec"]["executors"].values()}
    assert images == {"registry.example/lethe:cuda-test"}


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


def test_requests_settle_after_each_register_and_before_any_refresh(compiled):
    """Every register task of the scheduled run (dampened, repaired, retrained) is followed by a settle
    task, and the refresh of the new champion's importances waits for it; the on-demand pipeline,
    which holds no ledger requests, has none."""
    spec, _, _ = compiled["scheduled"]
    dags = {name: c["dag"]["tasks"] for name, c in spec["components"].items() if "dag" in c}
    settles = {task: body for tasks in dags.values() for task, body in tasks.items()
               if task.startswith("settle-requests")}
    registers = {task for tasks in dags.values() for task in tasks if task.startswith("register-")}
    assert len(settles) == len(registers) == 4
    assert {body["dependentTasks"][0] for body in settles.values()} == registers
    new_champion = {task: body for tasks in dags.values() for task, body in tasks.items()
                    if "pipelinechannel--register-" in body.get("triggerPolicy", {}).get("condition", "")}
    assert len(new_champion) == 4  # the gate said pass: refresh, if asked
    for task, body in new_champion.items():
        nested = _nested_tasks(spec, body["componentRef"]["name"])
        assert any(t.startswith("refresh-importances") for t in nested), task
        assert any(t.startswith("settle-requests") for t in body["dependentTasks"]), task
    assert not [t for t in _tasks(compiled["unlearning"][0]) if t.startswith("settle")]


def _nested_tasks(spec: dict, component: str) -> list[str]:
    dag = spec["components"][component].get("dag", {}).get("tasks", {})
    return [*dag, *(t for body in dag.values() for t in _nested_tasks(spec, body["componentRef"]["name"]))]


def test_the_exit_task_names_the_model_for_retention(compiled):
    spec, _, _ = compiled["scheduled"]
    finalize = spec["root"]["dag"]["tasks"]["finalize-requests"]
    assert "model_name" in finalize["inputs"]["parameters"]


def test_placement_resources_and_retries_come_from_the_environment(tmp_path, monkeypatch):
    env = {"LETHE_CUDA_IMAGE": CUDA_IMAGE, "LETHE_GPU_STEPS": "unlearn", "LETHE_RETRIES": "0",
           "LETHE_CPU_LIMIT": "3",
           "LETHE_STEP_RESOURCES": '{"unlearn": {"memory_request": "8Gi", "memory_limit": "32Gi"}}'}
    path = _compile_scheduled_with(env, tmp_path / "s.yaml", monkeypatch)
    spec = next(yaml.safe_load_all(path.read_text()))
    executors = spec["deploymentSpec"]["executors"]
    gpus = {e for e, body in executors.items() if "accelerator" in body["container"]["resources"]}
    assert gpus == {"exec-unlearn"}
    unlearn = executors["exec-unlearn"]["container"]["resources"]
    assert (unlearn["resourceMemoryRequest"], unlearn["resourceMemoryLimit"]) == ("8Gi", "32Gi")
    assert unlearn["resourceCpuLimit"] == "3"  # not in the step's entry: the default for every task
    evaluate = executors["exec-evaluate"]["container"]["resources"]  # the table replaces the rows'
    assert (evaluate["resourceCpuLimit"], evaluate["resourceMemoryLimit"]) == ("3", "4Gi")
    assert not [t for t in _tasks(spec).values() if "retryPolicy" in t]


@pytest.mark.parametrize(("env", "message"), [
    ({"LETHE_CPU_REQUEST": "4", "LETHE_CPU_LIMIT": "2"}, "above cpu_limit"),
    ({"LETHE_MEMORY_REQUEST": "2Gi", "LETHE_MEMORY_LIMIT": "1500M"}, "above memory_limit"),
    ({"LETHE_MEMORY_LIMIT": "4GB"}, "memory_limit"),
    ({"LETHE_MEMORY_LIMIT": "0.5Gi"}, "memory_limit"),  # Kubernetes takes it, KFP does not
    ({"LETHE_MEMORY_LIMIT": "512m"}, "memory_limit"),
    ({"LETHE_CPU_LIMIT": "1e3"}, "cpu_limit"),
    ({"LETHE_CPU_LIMIT": "-1"}, "cpu_limit"),
    ({"LETHE_CPU_LIMIT": "NaN"}, "cpu_limit"),
    ({"LETHE_STEP_RESOURCES": '{"unlearn": {"gpu": "1"}}'}, "unknown resource key"),
    ({"LETHE_STEP_RESOURCES": "unlearn=8Gi"}, "not JSON"),
    ({"LETHE_RETRIES": "-1"}, "LETHE_RETRIES"),
    ({"LETHE_GPU_LIMIT": "one"}, "LETHE_GPU_LIMIT"),
    ({"LETHE_GPU_NODE_SELECTOR": "gpu"}, "LETHE_GPU_NODE_SELECTOR"),
])
def test_bad_platform_settings_are_refused(env, message, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        platform_settings().resources_for("unlearn")


def test_quantities_in_every_form_kfp_takes_are_accepted(monkeypatch):
    for name, value in {"LETHE_CPU_REQUEST": ".5", "LETHE_CPU_LIMIT": "1500m",
                        "LETHE_MEMORY_REQUEST": "512Mi", "LETHE_MEMORY_LIMIT": "1G"}.items():
        monkeypatch.setenv(name, value)
    assert platform_settings().resources_for("unlearn", {"memory_limit": "2Gi"}) == {
        "cpu_request": ".5", "cpu_limit": "1500m", "memory_request": "512Mi", "memory_limit": "2Gi"}


def test_building_a_pipeline_leaves_inspect_stack_as_it_was_and_kfp_still_names_its_setter():
    """configure() lends KFP's setters a frame walk for inspect.stack (the full one scans sys.modules per
    frame): it is put back afterwards, and what KFP reads from it, the calling setter's name, is right."""
    import inspect

    from kfp import dsl

    from components.platform import _frames_without_source, configure
    from components.requests import settle_requests

    original = inspect.stack

    @dsl.pipeline(name="one-task")
    def one_task() -> None:
        configure(settle_requests(run_id="r"))

    assert one_task.pipeline_spec.root.dag.tasks and inspect.stack is original

    def set_something() -> str:
        return inspect.stack()[1][3]  # as KFP's _ensure_container_spec_exists reads it

    def caller() -> str:
        return set_something()

    with _frames_without_source():
        assert inspect.stack is not original
        assert caller() == "caller" and inspect.stack()[0][3] == (
            "test_building_a_pipeline_leaves_inspect_stack_as_it_was_and_kfp_still_names_its_setter")
    assert inspect.stack is original


def test_a_misspelt_gpu_step_is_refused_when_the_pipeline_is_built(monkeypatch):
    from kfp import dsl

    from components.platform import configure
    from components.training_set_importances import plan_shards

    monkeypatch.setenv("LETHE_GPU_STEPS", "unlern,evaluate")
    with pytest.raises(PipelineError, match="unknown step.*unlern"):
        @dsl.pipeline(name="misspelt")
        def misspelt():
            configure(plan_shards(num_shards=2))


def test_a_new_step_is_its_component_with_its_row_and_the_pipeline_that_wires_it(tmp_path, monkeypatch):
    """The extension cost: a component declared with its row, wired by a pipeline, compiles with
    what the row says, and is known to the placement variables, with no list edited anywhere."""
    from kfp import compiler, dsl

    from components import step as rows
    from components.image import IMAGE
    from components.platform import configure

    monkeypatch.setattr(rows, "_ROWS", dict(rows._ROWS))  # the toy row lives in this test alone

    @rows.step(stores=("storage",), gpu=True, resources={"memory_limit": "8Gi"}, cache=True, retry=False,
               display_name="a toy step")
    @dsl.component(base_image=IMAGE, install_kfp_package=False)
    def toy_step(count: int) -> int:
        from lethe.steps.full_importances import plan_shards

        return len(plan_shards(count))

    monkeypatch.setenv("LETHE_GPU_STEPS", "toy-step")  # known to the check of step names
    monkeypatch.setenv("LETHE_CUDA_IMAGE", CUDA_IMAGE)

    @dsl.pipeline(name="toy")
    def toy():
        configure(toy_step(count=2))

    out = tmp_path / "toy.yaml"
    compiler.Compiler().compile(toy, str(out))
    spec, platform = list(yaml.safe_load_all(out.read_text()))
    task = spec["root"]["dag"]["tasks"]["toy-step"]
    assert task["taskInfo"]["name"] == "a toy step" and task["cachingOptions"]["enableCache"] is True
    assert "retryPolicy" not in task
    resources = spec["deploymentSpec"]["executors"]["exec-toy-step"]["container"]["resources"]
    assert resources["resourceMemoryLimit"] == "8Gi" and resources["accelerator"]["resourceCount"] == "1"
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-toy-step"]
    assert [s["secretName"] for s in k8s["secretAsEnv"]] == ["lethe-s3"]


def test_a_step_without_a_row_is_refused_when_the_pipeline_is_built():
    from kfp import dsl

    from components.image import IMAGE
    from components.platform import configure

    @dsl.component(base_image=IMAGE, install_kfp_package=False)
    def undeclared() -> int:
        return 1

    with pytest.raises(PipelineError, match="undeclared has no row"):
        @dsl.pipeline(name="undeclared")
        def pipeline():
            configure(undeclared())


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


def _compile_scheduled_with(env: dict[str, str], path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The scheduled pipeline compiled with `env` set (a pipeline is built anew for each compile)."""
    from lethe.kfp.compiler import compile_pipeline

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        return compile_pipeline("scheduled", path)
    finally:
        for name in env:
            monkeypatch.delenv(name)


def test_gpu_placement_comes_from_the_environment(tmp_path, monkeypatch):
    env = {"LETHE_CUDA_IMAGE": CUDA_IMAGE,
           "LETHE_GPU_NODE_SELECTOR": "cloud.google.com/gke-accelerator=nvidia-l4",
           "LETHE_GPU_TOLERATION": "nvidia.com/gpu:NoSchedule"}
    path = _compile_scheduled_with(env, tmp_path / "s.yaml", monkeypatch)
    platform = list(yaml.safe_load_all(path.read_text()))[1]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for row in ROWS:
        placed = executors.get(f"exec-{row.name}")
        if placed is None:  # not in the scheduled pipeline
            continue
        if row.gpu:
            assert placed["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
            assert placed["tolerations"][0] == {"key": "nvidia.com/gpu", "operator": "Exists",
                                                "effect": "NoSchedule"}, row.name
        else:
            assert "nodeSelector" not in placed and "tolerations" not in placed, row.name


def test_no_gpu_when_the_limit_is_zero(tmp_path, monkeypatch):
    env = {"LETHE_CUDA_IMAGE": CUDA_IMAGE, "LETHE_GPU_LIMIT": "0"}
    path = _compile_scheduled_with(env, tmp_path / "s.yaml", monkeypatch)
    executors = yaml.safe_load_all(path.read_text()).__next__()["deploymentSpec"]["executors"]
    assert not [e for e, body in executors.items() if "accelerator" in body["container"]["resources"]]
    assert executors["exec-unlearn"]["container"]["resources"]["resourceMemoryLimit"] == "16Gi"


@pytest.mark.parametrize("text", ["nvidia.com/gpu", "gpu=yes:Sometimes", ":NoSchedule"])
def test_bad_tolerations_are_refused(text):
    with pytest.raises(ConfigError):
        parse_toleration(text)


def test_cron_needs_six_fields():
    from lethe.kfp.scheduler import validate_cron

    assert validate_cron(" 0 0 2 * * * ") == "0 0 2 * * *"
    with pytest.raises(PipelineError, match="six"):
        validate_cron("0 2 * * *")
    with pytest.raises(PipelineError, match="field"):
        validate_cron("0 0 2 * * $(id)")


def test_compile_command_writes_every_yaml_and_without_a_cuda_image_asks_for_no_gpu(tmp_path, monkeypatch,
                                                                                    capsys):
    from lethe.cli import main
    from pipelines import PIPELINES

    monkeypatch.delenv("LETHE_CUDA_IMAGE", raising=False)
    monkeypatch.setenv("LETHE_GPU_NODE_SELECTOR", "gpu=l4")  # placement for GPUs that are not asked for
    assert main(["pipeline", "compile", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == sorted(f"{name}.yaml" for name in PIPELINES)
    note = capsys.readouterr().err.strip().splitlines()
    assert len(note) == 1 and "no GPU requested" in note[0] and "LETHE_CUDA_IMAGE" in note[0]
    for path in tmp_path.iterdir():
        spec, platform = list(yaml.safe_load_all(path.read_text()))
        containers = [body["container"] for body in spec["deploymentSpec"]["executors"].values()]
        assert not [c for c in containers if "accelerator" in c["resources"]], path.name
        assert len({c["image"] for c in containers}) == 1, path.name
        placed = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values()
        assert not [p for p in placed if "nodeSelector" in p or "tolerations" in p], path.name


def _storage_params(pipeline: str) -> set[str]:
    from lethe.kfp.params import pipeline_params

    return {param.name for param in pipeline_params(pipeline).params if param.storage}


def _pipeline_inputs(task: dict) -> set[str]:
    """The pipeline parameters a task takes (directly or through its DAG's channels)."""
    names = set()
    for value in task.get("inputs", {}).get("parameters", {}).values():
        name = value.get("componentInputParameter")
        if name:
            names.add(name.removeprefix("pipelinechannel--"))
    return names


def test_every_task_that_can_touch_object_storage_gets_the_s3_secret(compiled):
    """A task reads or writes s3:// when it takes a storage URI (data set, subject map, thresholds,
    recipe: lethe.kfp.params marks them) or passes over the data set (LETHE_DATASET_URI on a cluster):
    it gets the S3 keys. Found from the compiled tasks and the schema, not from the rows' stores."""
    from components.step import DATA_PASS

    checked = 0
    for name, (spec, platform, _) in compiled.items():
        k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        for task_name, task in _tasks(spec).items():
            executor = _executor_of(spec, task)
            row = step_rows()[_step_of(executor)]
            reads = _pipeline_inputs(task) & _storage_params(name)
            if reads or dict(row.resources) == dict(DATA_PASS):
                mounted = {secret["secretName"] for secret in k8s[executor].get("secretAsEnv", [])}
                assert "lethe-s3" in mounted, (name, task_name, sorted(reads))
                checked += 1
    assert checked >= 10


def test_no_cached_task_gets_the_ledgers_or_the_subject_keys_secret(compiled):
    for name, (spec, platform, _) in compiled.items():
        k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        for task_name, task in _tasks(spec).items():
            if task.get("cachingOptions", {}).get("enableCache"):
                mounted = {s["secretName"] for s in k8s[_executor_of(spec, task)].get("secretAsEnv", [])}
                assert not mounted & {"lethe-ledger", "lethe-subject-key"}, (name, task_name)


def test_every_pipeline_parameter_has_its_schemas_one_line_description(compiled):
    from lethe.kfp.params import pipeline_params

    for name, (spec, _, _) in compiled.items():
        schema = pipeline_params(name)
        params = spec["root"]["inputDefinitions"]["parameters"]
        assert sorted(params) == sorted(schema.names), name
        for key, definition in params.items():
            description = definition.get("description", "")
            assert description == schema[key].description and "\n" not in description, (name, key)


def test_schedule_command_refuses_a_five_field_cron_before_contacting_kfp(capsys):
    from lethe.cli import main

    # An unreachable host: a five-field cron must fail before any connection is tried.
    code = main(["pipeline", "schedule", "--host", "http://127.0.0.1:9", "--cron", "0 2 * * *",
                 "--name", "nightly"])
    assert code == 2
    assert "six" in capsys.readouterr().err


def test_every_task_runs_warm_under_kfp_local(compiled):
    """`lethe.kfp.warm_tasks` forks a task only when its command is kfp's launcher: every lethe task's
    is, as kfp.local runs it (a kfp whose launcher changes makes every local task cold and this fail)."""
    import sys

    from kfp.local.subprocess_task_handler import replace_python_executable

    from lethe.kfp.warm_tasks import parse_launch

    for name, (spec, _, _) in compiled.items():
        for label, executor in spec["deploymentSpec"]["executors"].items():
            container = executor["container"]
            command = replace_python_executable([*container["command"], *container["args"]], sys.executable)
            launch = parse_launch(command)
            assert launch is not None, f"{name}/{label}: {container['command'][:3]}"
            assert launch[0] == "components.task_entry" and launch[1][:2] == ["-m", "kfp.dsl.executor_main"]
