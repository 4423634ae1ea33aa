"""Artifacts by URI: sha256 sidecars checked on read, directories, S3 (moto in-process), errors."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
import torch

from lethe import storage
from lethe.errors import ImportancesError, IntegrityError, StorageError
from lethe.storage import ArtifactNotFoundError, ImportancesCache, s3
from lethe.unlearning import Importances

BUCKET = "lethe-unit"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3.reset_clients()
    yield
    s3.reset_clients()


@pytest.fixture(params=["local", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An artifact root: a local folder, or a bucket of moto's in-process S3."""
    if request.param == "local":
        return str(tmp_path / "store")
    moto = pytest.importorskip("moto")
    request.getfixturevalue("aws_env")
    mock = moto.mock_aws()
    mock.start()
    request.addfinalizer(mock.stop)
    s3.client().create_bucket(Bucket=BUCKET)
    return f"s3://{BUCKET}/prefix"


def tamper(uri: str) -> None:
    """Flip one byte of the stored object, behind lethe's back."""
    if storage.is_s3(uri):
        bucket, key = storage.split_s3(uri)
        body = bytearray(s3.client().get_object(Bucket=bucket, Key=key)["Body"].read())
        body[len(body) // 2] ^= 0x01
        s3.client().put_object(Bucket=bucket, Key=key, Body=bytes(body))
    else:
        path = Path(uri)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))


def test_file_round_trip_records_the_sha256(root: str, tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(3000))
    uri = storage.join_uri(root, "a", "b.bin")
    sha = storage.put_file(src, uri)
    assert sha == hashlib.sha256(src.read_bytes()).hexdigest()
    assert storage.recorded_sha256(uri) == sha
    assert storage.exists(uri) and not storage.exists(storage.join_uri(root, "a", "missing"))
    back = storage.get_file(uri, tmp_path / "out" / "b.bin")
    assert back.read_bytes() == src.read_bytes()
    assert storage.get_bytes(uri) == src.read_bytes()


def test_one_changed_byte_is_refused_on_read(root: str, tmp_path: Path) -> None:
    uri = storage.join_uri(root, "weights.bin")
    storage.put_bytes(os.urandom(1000), uri)
    tamper(uri)
    dest = tmp_path / "dest.bin"
    with pytest.raises(IntegrityError, match="altered"):
        storage.get_file(uri, dest)
    assert not dest.exists() and not list(tmp_path.glob(".dest.bin*"))  # nothing half-written left
    with pytest.raises(IntegrityError):
        storage.get_bytes(uri)


def test_an_artifact_without_its_sha256_is_not_trusted(root: str) -> None:
    uri = storage.join_uri(root, "x.json")
    storage.put_bytes(b"{}", uri)
    sidecar = uri + ".sha256"
    if storage.is_s3(uri):
        bucket, key = storage.split_s3(sidecar)
        s3.client().delete_object(Bucket=bucket, Key=key)
    else:
        Path(sidecar).unlink()
    with pytest.raises(IntegrityError, match="no recorded sha256"):
        storage.get_bytes(uri)
    with pytest.raises(ArtifactNotFoundError):
        storage.get_bytes(storage.join_uri(root, "never-written"))


def test_directory_round_trip_and_tampering(root: str, tmp_path: Path) -> None:
    src = tmp_path / "model"
    (src / "sub").mkdir(parents=True)
    (src / "model.json").write_text('{"arch": "convnet"}')
    (src / "sub" / "weights.bin").write_bytes(os.urandom(2048))
    uri = storage.join_uri(root, "models", "v1")
    manifest = storage.put_dir(src, uri)
    assert set(manifest) == {"model.json", "sub/weights.bin"}
    out = storage.get_dir(uri, tmp_path / "back")
    assert (out / "sub" / "weights.bin").read_bytes() == (src / "sub" / "weights.bin").read_bytes()
    assert (out / "model.json").read_text() == '{"arch": "convnet"}'
    tamper(storage.join_uri(uri, "sub", "weights.bin"))
    with pytest.raises(IntegrityError):
        storage.get_dir(uri, tmp_path / "again")
    with pytest.raises(ArtifactNotFoundError):
        storage.get_dir(storage.join_uri(root, "models", "v2"), tmp_path / "none")


def tiny_importances(fingerprint: str = "a" * 64, batch_size: int = 8, scale: float = 1.0) -> Importances:
    generator = torch.Generator().manual_seed(0)
    values = {"w": torch.rand(3, 4, generator=generator) * scale, "b": torch.rand(3, generator=generator)}
    return Importances(values, method="lfssd", batch_size=batch_size, num_batches=5, num_samples=40,
                       model_fingerprint=fingerprint)


def test_importances_cache_keys_on_model_data_method_and_batch_size(root: str) -> None:
    cache = ImportancesCache(root)
    key = {"model_fingerprint": "a" * 64, "dataset_fingerprint": "d" * 64, "method": "lfssd", "batch_size": 8}
    assert cache.get(**key) is None
    original = tiny_importances()
    uri = cache.put(original, dataset_fingerprint="d" * 64)
    assert uri == cache.uri_for(**key) and uri.startswith(root)
    assert ImportancesCache.sha256(uri) == storage.recorded_sha256(uri)
    loaded = cache.get(**key)
    assert loaded is not None and loaded.metadata == original.metadata
    for name in original:
        torch.testing.assert_close(loaded[name], original[name], rtol=0, atol=0)
    for other in ({"batch_size": 16}, {"method": "ssd"}, {"dataset_fingerprint": "e" * 64},
                  {"model_fingerprint": "b" * 64}):
        assert cache.get(**{**key, **other}) is None
    tamper(uri)
    with pytest.raises(IntegrityError):
        cache.get(**key)


def test_importances_cache_refuses_an_entry_that_belongs_to_another_model(root: str, tmp_path: Path) -> None:
    cache = ImportancesCache(root)
    key = {"model_fingerprint": "a" * 64, "dataset_fingerprint": "d" * 64, "method": "lfssd", "batch_size": 8}
    stray = tiny_importances(fingerprint="c" * 64).save(tmp_path / "stray.safetensors")
    storage.put_file(stray, cache.uri_for(**key))  # written under the wrong key, with a valid sha256
    with pytest.raises(ImportancesError, match="belong to"):
        cache.get(**key)
    with pytest.raises(StorageError, match="invalid"):
        cache.uri_for(**{**key, "dataset_fingerprint": "../escape"})


def test_large_uploads_are_multipart(aws_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    moto = pytest.importorskip("moto")
    monkeypatch.setenv("LETHE_S3_MULTIPART_MB", "5")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 * 1024 * 1024))
    with moto.mock_aws():
        s3.client().create_bucket(Bucket=BUCKET)
        storage.put_file(big, f"s3://{BUCKET}/big.bin")
        etag = s3.client().head_object(Bucket=BUCKET, Key="big.bin")["ETag"]
        assert etag.strip('"').endswith("-3")  # three parts of at most 5 MiB
        back = storage.get_file(f"s3://{BUCKET}/big.bin", tmp_path / "back.bin")
        assert back.read_bytes() == big.read_bytes()


def test_the_standard_endpoint_variables_are_honoured(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert s3.client().meta.endpoint_url == "http://127.0.0.1:9"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:8333")  # the S3-specific one wins
    assert s3.client().meta.endpoint_url == "http://127.0.0.1:8333"
    assert s3.endpoint_url() == "http://127.0.0.1:8333"


def test_unreachable_s3_is_a_clear_error_within_seconds(aws_env: None, monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # discard port: nothing listens
    src = tmp_path / "f.bin"
    src.write_bytes(b"data")
    start = time.monotonic()
    for attempt in (lambda: storage.put_file(src, f"s3://{BUCKET}/f.bin"),
                    lambda: storage.get_bytes(f"s3://{BUCKET}/f.bin")):
        with pytest.raises(StorageError, match="cannot reach the S3 endpoint http://127.0.0.1:9"):
            attempt()
    assert time.monotonic() - start < 20


def test_a_missing_bucket_is_named(aws_env: None) -> None:
    moto = pytest.importorskip("moto")
    with moto.mock_aws(), pytest.raises(StorageError, match="does not exist"):
        storage.put_bytes(b"x", "s3://no-such-bucket-here/x")


def test_uris() -> None:
    assert storage.join_uri("s3://b/p/", "a", "/c") == "s3://b/p/a/c"
    assert storage.join_uri("s3://b", "k") == "s3://b/k"
    assert storage.split_s3("s3://bucket/a/b") == ("bucket", "a/b")
    assert storage.join_uri("file:///tmp/x", "y") == "/tmp/x/y"
    with pytest.raises(StorageError):
        storage.split_s3("http://x/y")
    with pytest.raises(StorageError, match="unsupported"):
        storage.put_bytes(b"", "gs://bucket/key")
