"""Artifacts on the local disk and on a real S3 endpoint (moto_server): integrity, directories,
multipart uploads, the importances cache, listing, and data shards read through the same layer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lethe import storage
from lethe.data import SampleSet, iter_shards, load_dataset, write_shards
from lethe.data.sampleset import Normalization
from lethe.errors import IntegrityError
from lethe.steps.cache import ImportancesCache
from lethe.unlearning import Importances


def flip_a_byte(uri: str, s3_client=None) -> None:  # noqa: ANN001 - a boto3 client
    if storage.is_s3(uri):
        bucket, key = storage.split_s3(uri)
        body = bytearray(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read())
        body[0] ^= 0x80
        s3_client.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    else:
        data = bytearray(Path(uri).read_bytes())
        data[0] ^= 0x80
        Path(uri).write_bytes(bytes(data))


@pytest.fixture
def raw_client(artifact_root: str, request: pytest.FixtureRequest):  # noqa: ANN201
    return request.getfixturevalue("s3_server").client() if storage.is_s3(artifact_root) else None


def test_a_model_directory_round_trips_and_a_changed_byte_is_refused(artifact_root: str, raw_client,
                                                                    tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(os.urandom(100_000))
    (model / "model.json").write_text('{"arch": "convnet"}')
    uri = storage.join_uri(artifact_root, "models", "candidate")
    manifest = storage.put_dir(model, uri)
    back = storage.get_dir(uri, tmp_path / "back")
    for name in manifest:
        assert (back / name).read_bytes() == (model / name).read_bytes()
    flip_a_byte(storage.join_uri(uri, "model.safetensors"), raw_client)
    with pytest.raises(IntegrityError, match="model.safetensors"):
        storage.get_dir(uri, tmp_path / "again")
    assert not (tmp_path / "again" / "model.safetensors").exists()


def test_importances_are_cached_once_per_key(artifact_root: str, raw_client) -> None:
    values = {"conv.weight": torch.rand(4, 1, 3, 3), "fc.bias": torch.rand(10)}
    importances = Importances(values, method="lfssd", batch_size=32, num_batches=3, num_samples=90,
                              model_fingerprint="f" * 64)
    cache = ImportancesCache(artifact_root)
    key = {"model_fingerprint": "f" * 64, "dataset_fingerprint": "d" * 64, "method": "lfssd",
           "batch_size": 32}
    assert cache.get(**key) is None
    uri = cache.put(importances, dataset_fingerprint="d" * 64)
    hit = cache.get(**key)
    assert hit is not None and all(torch.equal(hit[n], importances[n]) for n in importances)
    assert cache.get(**{**key, "batch_size": 64}) is None
    flip_a_byte(uri, raw_client)
    with pytest.raises(IntegrityError):
        cache.get(**key)


def test_large_files_go_up_in_parts(s3_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LETHE_S3_MULTIPART_MB", "5")
    big = tmp_path / "importances.safetensors"
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    uri = "s3://lethe-it/multipart/importances.safetensors"
    sha = storage.put_file(big, uri)
    head = s3_env.client().head_object(Bucket="lethe-it", Key="multipart/importances.safetensors")
    assert head["ETag"].strip('"').endswith("-3") and head["ContentLength"] == big.stat().st_size
    assert storage.recorded_sha256(uri) == sha
    assert storage.get_file(uri, tmp_path / "back").read_bytes() == big.read_bytes()


def test_shards_published_through_lethe_storage_load_back(artifact_root: str, tmp_path: Path) -> None:
    samples = SampleSet(name="tiny", split="train", ids=[f"tiny/train/{i}" for i in range(10)],
                        inputs=torch.randint(0, 256, (10, 1, 4, 4), dtype=torch.uint8),
                        labels=torch.arange(10) % 3, num_classes=3, normalization=Normalization.uniform(1))
    local = tmp_path / "shards"
    write_shards(samples, local, shard_size=4)
    root = storage.join_uri(artifact_root, "data", "tiny")
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        storage.put_file(path, storage.join_uri(root, path.relative_to(local).as_posix()))
    listed = storage.list_uris(storage.join_uri(root, "train"))
    assert [u.rsplit("/", 1)[-1] for u in listed] == [
        f"shard-0000{n}.npz{suffix}" for n in range(3) for suffix in ("", ".sha256")]
    assert [len(shard) for shard in iter_shards(root, "train")] == [4, 4, 2]  # sidecars are not shards
    loaded = load_dataset(f"shards:{root}", "train")
    assert loaded.ids == samples.ids and torch.equal(loaded.inputs, samples.inputs)
    assert torch.equal(loaded.labels, samples.labels)
