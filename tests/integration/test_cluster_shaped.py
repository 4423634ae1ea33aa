"""The scheduled pipeline as it runs on a cluster: nothing local but the code.

kfp.local runs every task as a subprocess that inherits this environment, which is shaped like a
pod's: the data set (published by `lethe data publish`), the subject map, the importances cache,
the certificates and the MLflow artifacts live only in the S3 server (moto); MLflow is a server;
the ledger is PostgreSQL; LETHE_STORE_ONLY makes a data directory, the Debian package or a bundled
set an error in every task. Each task sees only what its compiled task is granted on a cluster (the
`lethe-config` keys and the Secrets of its step's stores: `run_local(..., cluster_env=True)`, through
lethe's task entry), so a step that reads s3:// without the S3 keys fails here as it would in a pod.
Requests filed by subject (under any spelling of the id) are fulfilled; a changed shard, and a data
set that is not the champion's, are refused before anything is claimed.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from lethe.cli import main
from tests.integration.conftest import BUCKET
from tests.pipelines.helpers import ENVIRONMENT, register_champion

pytestmark = pytest.mark.slow

#: The subject map as the controller keeps it: raw ids, as people typed them.
SUBJECT_SAMPLES = {"Ann.Lee@Example.org": [3, 41, 77, 120, 160, 203, 255, 301],
                   "bob@example.org": [5, 48, 90, 133, 177, 222, 260, 333],
                   "carol@example.org": [7, 50, 95]}
KEY = "9f" * 32  # 32 bytes, hex


@pytest.fixture
def cluster(s3_env, mlflow_server, postgres_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings for the tasks, all pointing at the servers; LETHE_HOME is a directory nothing should use."""
    for name in (*ENVIRONMENT, "LETHE_DEMO", "LETHE_DATASET_URI", "LETHE_SUBJECT_MAP", "LETHE_STORE_ONLY"):
        monkeypatch.delenv(name, raising=False)
    root = f"s3://{BUCKET}/cluster-{uuid.uuid4().hex[:8]}"
    settings = {
        "LETHE_HOME": str(tmp_path / "home"),
        "LETHE_LEDGER_URL": postgres_server.create_database(),
        "LETHE_TRACKING_URI": mlflow_server.uri,
        "LETHE_MODEL_NAME": f"cluster-{uuid.uuid4().hex[:8]}",
        "LETHE_ARTIFACTS": f"{root}/artifacts",
        "LETHE_DATASET_URI": f"{root}/datasets/digits",
        "LETHE_SUBJECT_MAP": f"{root}/subjects/subjects.parquet",
        "LETHE_SUBJECT_KEY": KEY,
        # The ConfigMap's name for the endpoint (a pod gets AWS_ENDPOINT_URL, not ..._S3).
        "AWS_ENDPOINT_URL": s3_env.endpoint,
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return {"root": root, "home": tmp_path / "home", **settings}


def _objects(s3_env, prefix: str) -> dict[str, bytes]:
    client = s3_env.client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return {key: client.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


def test_the_scheduled_run_lives_in_object_storage(cluster, s3_env, digits_convnet_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    from lethe.errors import IntegrityError
    from lethe.kfp.local import run_local
    from lethe.ledger import Ledger
    from lethe.models import read_card
    from lethe.registry import Registry
    from lethe.steps.collect import collect_requests

    # The operator's side: publish the data set and the subject map, register the champion.
    assert main(["data", "publish", "--dataset", "digits", "--to", cluster["LETHE_DATASET_URI"]]) == 0
    rows = [(subject, f"digits/train/{i}") for subject, ids in SUBJECT_SAMPLES.items() for i in ids]
    map_file = tmp_path / "subjects.parquet"
    pd.DataFrame(rows, columns=["subject_id", "sample_id"]).to_parquet(map_file)
    assert main(["data", "publish-subjects", str(map_file), "--to", cluster["LETHE_SUBJECT_MAP"]]) == 0
    map_file.unlink()  # the map now exists only in the bucket
    register_champion(digits_convnet_dir)  # trained on the local `digits`: the copy has its fingerprint
    ledger = Ledger()
    ann = ledger.add("  ann.lee@EXAMPLE.org ").request.id  # another spelling of the map's id
    bob = ledger.add("bob@example.org").request.id
    stranger = ledger.add("nobody@example.org").request.id

    # The pods' side: only the object store.
    s3_root = cluster["root"].removeprefix(f"s3://{BUCKET}/")
    monkeypatch.setenv("LETHE_STORE_ONLY", "1")
    # No refresh of the new champion's importances: tests/pipelines runs it; here it would only add time.
    run = run_local("scheduled", {"refresh": False}, pipeline_root=tmp_path / "kfp",
                    log_path=tmp_path / "kfp.log", cluster_env=True)
    assert run.succeeded, f"{run.failed_task}: {run.failure}; see {tmp_path / 'kfp.log'}"
    # The ladder's first look at the gate (climb) says register: no repair, no retraining.
    assert list(run.tasks) == ["collect-requests", "compute-importances", "unlearn", "evaluate", "climb",
                               "register-and-gate", "settle-requests", "finalize-requests"]

    registry = Registry()
    assert registry.champion_version() == "2"
    version = registry.version("2")
    assert set(version.request_ids) == {ann, bob}
    for request_id in (ann, bob):
        assert (ledger.get(request_id).state, ledger.get(request_id).model_version) == ("fulfilled", "2")
    assert ledger.get(stranger).state == "failed"

    stored = _objects(s3_env, s3_root)
    names = {key.removeprefix(f"{s3_root}/") for key in stored}
    assert {f"artifacts/certificates/{ann}.json", f"artifacts/certificates/{bob}.json"} <= names
    # The importances cache: the champion's, computed by the run, in the bucket.
    cached = {n.split("/")[2] for n in names
              if n.startswith("artifacts/importances/") and n.endswith(".safetensors")}
    assert cached == {read_card(digits_convnet_dir).fingerprint}
    # The new champion's card names the data it met, by URI and fingerprint.
    card = read_card(Registry().download_model("2", tmp_path / "v2"))
    assert card.dataset == f"shards:{cluster['LETHE_DATASET_URI']}"
    assert card.dataset_fingerprint == read_card(digits_convnet_dir).dataset_fingerprint
    # The raw subject ids are in the map and nowhere else in the bucket.
    for key, data in stored.items():
        if not key.startswith(f"{s3_root}/subjects/"):
            assert b"ann.lee" not in data.lower() and b"bob@example" not in data.lower(), key
    assert not cluster["home"].exists() or not any(cluster["home"].rglob("*")), "a task wrote to LETHE_HOME"

    # A changed shard: the next run's collect step refuses the data and claims nothing.
    later = ledger.add("carol@example.org").request.id
    shard = f"{s3_root}/datasets/digits/train/shard-00000.npz"
    data = bytearray(stored[shard])
    data[-100] ^= 0xFF
    s3_env.client().put_object(Bucket=BUCKET, Key=shard, Body=bytes(data))
    with pytest.raises(IntegrityError, match="altered"):
        collect_requests("tampered-run", forget_path=tmp_path / "forget", model_dir=tmp_path / "champion")
    assert ledger.get(later).state == "pending"


#: The other pipelines, small: each runs with every task cut down to what its compiled task is granted.
#: The last field: whether it runs store-only. The audit pipelines (reference models, retrain) have no
#: `dataset` parameter and read the data set the card names ('digits'), which LETHE_STORE_ONLY refuses:
#: a known gap (issue 26's closing note), so they run with the data set at hand.
OTHER_RUNS = (("unlearning", {"forget_subjects": ["bob@example.org"], "refresh": False}, True),
              ("importances", {"num_shards": 2}, True),
              ("reference-models", {"k": 2, "epochs": 1}, False),
              ("retrain", {"forget_subjects": ["carol@example.org"], "epochs": 1}, False))


def test_every_other_pipeline_runs_with_only_what_its_tasks_are_granted(
        cluster, s3_env, digits_convnet_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    from lethe.kfp.local import run_local

    assert main(["data", "publish", "--dataset", "digits", "--to", cluster["LETHE_DATASET_URI"]]) == 0
    rows = [(subject, f"digits/train/{i}") for subject, ids in SUBJECT_SAMPLES.items() for i in ids]
    map_file = tmp_path / "subjects.parquet"
    pd.DataFrame(rows, columns=["subject_id", "sample_id"]).to_parquet(map_file)
    assert main(["data", "publish-subjects", str(map_file), "--to", cluster["LETHE_SUBJECT_MAP"]]) == 0
    register_champion(digits_convnet_dir)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny models, a busy machine
    for name, params, store_only in OTHER_RUNS:
        if store_only:
            monkeypatch.setenv("LETHE_STORE_ONLY", "1")
        else:
            monkeypatch.delenv("LETHE_STORE_ONLY", raising=False)
        log = tmp_path / f"{name}.log"
        run = run_local(name, params, pipeline_root=tmp_path / "kfp", log_path=log, cluster_env=True)
        assert run.succeeded, f"{name}: {run.failed_task}: {run.failure}; see {log}"
