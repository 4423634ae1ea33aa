"""Artifacts by URI: sha256 sidecars checked on read, directories, S3 (moto in-process), errors;
the backend registry (one backend per scheme) and the package's independence from the engine."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lethe import storage
from lethe.errors import ImportancesError, IntegrityError, StorageError
from lethe.steps.cache import ImportancesCache
from lethe.storage import ArtifactNotFoundError, Backend, s3
from lethe.storage.backends import LocalBackend, S3Backend
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
    with pytest.raises(StorageError, match="not an S3 URI"):
        storage.join_uri("s3://", "k")
    with pytest.raises(StorageError, match="unsupported"):
        storage.put_bytes(b"", "gs://bucket/key")


def test_absolute_uris_name_the_same_object_from_any_directory(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """What MLflow is given as an artifact location: a URI of the backend's own, never a relative path."""
    monkeypatch.chdir(tmp_path)
    assert storage.absolute_uri("artifacts/mlflow") == (tmp_path / "artifacts" / "mlflow").as_uri()
    assert storage.absolute_uri(f"file://{tmp_path}/a") == (tmp_path / "a").as_uri()
    assert storage.absolute_uri("s3://bucket/mlflow") == "s3://bucket/mlflow"


def test_a_malformed_directory_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    storage.put_dir(tmp_path / "src", str(tmp_path / "stored"))
    storage.put_bytes(b'{"files": ["a.txt"]}', str(tmp_path / "stored" / storage.MANIFEST))
    with pytest.raises(IntegrityError, match="manifest .* is malformed"):
        storage.get_dir(str(tmp_path / "stored"), tmp_path / "back")


def test_listing_is_recursive_sorted_and_below_the_folder_only(root: str) -> None:
    for name in ("b/2.bin", "a.bin", "b/1.bin", "bc/3.bin"):
        storage.put_bytes(name.encode(), storage.join_uri(root, "data", name))
    listed = storage.list_uris(storage.join_uri(root, "data", "b"))
    assert listed == [storage.join_uri(root, "data", "b", n) for n in ("1.bin", "1.bin.sha256", "2.bin",
                                                                         "2.bin.sha256")]
    assert all(storage.exists(uri) for uri in listed)  # the URIs it lists are the ones it reads
    assert storage.list_uris(storage.join_uri(root, "nothing-here")) == []
    assert len(storage.list_uris(root)) == 8


def test_delete_removes_the_artifact_and_its_sidecar(root: str) -> None:
    uri = storage.join_uri(root, "gone.bin")
    storage.put_bytes(b"x", uri)
    storage.delete(uri)
    assert not storage.exists(uri) and storage.list_uris(root) == []
    storage.delete(uri)  # deleting nothing is not an error


def test_local_listing_skips_half_written_temporary_files(tmp_path: Path) -> None:
    storage.put_bytes(b"x", str(tmp_path / "a.bin"))
    (tmp_path / ".b.bin.abc123.part").write_bytes(b"half")
    assert storage.list_uris(str(tmp_path)) == [str(tmp_path / "a.bin"), str(tmp_path / "a.bin.sha256")]


def test_the_backend_is_chosen_by_the_uri_scheme(tmp_path: Path) -> None:
    assert isinstance(storage.backend_for(str(tmp_path / "x")), LocalBackend)
    assert isinstance(storage.backend_for(f"file://{tmp_path}/x"), LocalBackend)
    assert isinstance(storage.backend_for("s3://bucket/key"), S3Backend)
    assert isinstance(storage.backend_for("S3://bucket/key"), S3Backend)
    storage.put_bytes(b"via file://", f"file://{tmp_path}/f.bin")
    assert storage.get_bytes(str(tmp_path / "f.bin")) == b"via file://"
    for unknown in ("gs://bucket/key", "mem2://x"):
        with pytest.raises(StorageError, match="unsupported storage URI .*no backend for") as refused:
            storage.backend_for(unknown)
        assert "\n" not in str(refused.value)
    with pytest.raises(StorageError, match="invalid URI scheme"):
        storage.register_backend("not a scheme", LocalBackend())


class MemoryBackend(Backend):
    """A toy backend: objects in a dict. Proves that a new scheme needs nothing but this class."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def read_bytes(self, uri: str) -> bytes:
        if uri not in self.objects:
            raise ArtifactNotFoundError(f"no artifact at {uri}")
        return self.objects[uri]

    def write_bytes(self, uri: str, data: bytes) -> None:
        self.objects[uri] = bytes(data)

    def upload_file(self, src: Path, uri: str) -> None:
        self.write_bytes(uri, Path(src).read_bytes())

    def download_file(self, uri: str, dest: Path) -> None:
        Path(dest).write_bytes(self.read_bytes(uri))

    def exists(self, uri: str) -> bool:
        return uri in self.objects

    def list(self, prefix: str) -> list[str]:
        folder = prefix.rstrip("/") + "/"
        return sorted(uri for uri in self.objects if uri.startswith(folder))

    def delete(self, uri: str) -> None:
        self.objects.pop(uri, None)


@pytest.fixture
def memory_backend(monkeypatch: pytest.MonkeyPatch) -> MemoryBackend:
    from lethe.storage import backends

    backend = MemoryBackend()
    monkeypatch.setitem(backends.BACKENDS, "mem", backend)  # what register_backend does, undone after
    return backend


def test_a_new_backend_is_one_class_and_one_entry(memory_backend: MemoryBackend, tmp_path: Path) -> None:
    uri = storage.join_uri("mem://store/", "models", "/v1.bin")
    assert uri == "mem://store/models/v1.bin"
    sha = storage.put_bytes(b"weights", uri)
    assert memory_backend.objects[uri + ".sha256"] == f"{sha}  v1.bin\n".encode()
    assert storage.exists(uri) and storage.get_bytes(uri) == b"weights"
    assert storage.recorded_sha256(uri) == sha
    memory_backend.objects[uri] = b"weightz"  # tampered behind lethe's back
    with pytest.raises(IntegrityError, match="altered"):
        storage.get_bytes(uri)
    src = tmp_path / "model"
    src.mkdir()
    (src / "model.json").write_text("{}")
    storage.put_dir(src, "mem://store/dir")
    assert (storage.get_dir("mem://store/dir", tmp_path / "back") / "model.json").read_text() == "{}"
    assert storage.list_uris("mem://store/dir") == ["mem://store/dir/lethe-manifest.json",
                                                    "mem://store/dir/lethe-manifest.json.sha256",
                                                    "mem://store/dir/model.json",
                                                    "mem://store/dir/model.json.sha256"]


def test_register_backend_serves_a_new_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    from lethe.storage import backends

    monkeypatch.setattr(backends, "BACKENDS", dict(backends.BACKENDS))  # restored after the test
    backend = MemoryBackend()
    storage.register_backend("mem", backend)
    assert storage.backend_for("mem://x/y") is backend


def test_the_storage_layer_imports_nothing_of_the_engine() -> None:
    heavy = ("torch", "lethe.unlearning", "lethe.data", "lethe.models", "lethe.steps")
    code = ("import sys, lethe.storage; print(sorted(m for m in sys.modules "
            f"if any(m == h or m.startswith(h + '.') for h in {heavy!r})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_tagged_record_round_trips_and_a_wrong_or_broken_one_is_refused(tmp_path) -> None:
    from lethe.errors import PipelineError
    from lethe.storage.records import read_record, write_record

    path = write_record(tmp_path / "sub" / "r.json", "lethe-test/1", {"a": 1})
    assert read_record(path, "lethe-test/1", what="a test record", error=PipelineError) == {"a": 1}
    with pytest.raises(PipelineError, match=r"is not a test record \(lethe-test/2\)"):
        read_record(path, "lethe-test/2", what="a test record", error=PipelineError)
    (tmp_path / "broken.json").write_text("{not json")
    for bad in (tmp_path / "broken.json", tmp_path / "missing.json"):
        with pytest.raises(PipelineError, match="cannot read a test record from") as refused:
            read_record(bad, "lethe-test/1", what="a test record", error=PipelineError)
        assert "\n" not in str(refused.value)
