"""Data sets and subject maps in object storage, and a model meeting only its own data.

`lethe data publish` writes shards, sidecars, a manifest and a card through lethe.storage; the
`shards:` loader verifies them; every step refuses data whose fingerprint, image size, channels or
classes differ from the model card's; LETHE_STORE_ONLY refuses every local data source.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
import torch

from lethe.cli import main
from lethe.data import (
    SampleSet,
    load_dataset,
    publish_dataset,
    publish_subject_map,
    subject_map,
    write_shards,
)
from lethe.data.fashion_mnist import DEBIAN_DIR
from lethe.data.shards import read_dataset_card
from lethe.errors import DataError, IntegrityError, ModelError
from lethe.models import read_card
from lethe.steps.forget_set import load_forget_set
from lethe.steps.training_data import check_model_fits
from lethe.steps.unlearn import unlearn
from lethe.storage import put_dir
from tests.unit.test_storage import MemoryBackend

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("LETHE_DATASET_URI", "LETHE_SUBJECT_MAP", "LETHE_STORE_ONLY", "LETHE_DATA_DIR",
                 "LETHE_ARTIFACTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LETHE_HOME", str(tmp_path / "home"))
    return monkeypatch


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> MemoryBackend:
    """A remote object store (`mem://`), so that LETHE_STORE_ONLY has something to accept."""
    from lethe.storage import backends

    backend = MemoryBackend()
    monkeypatch.setitem(backends.BACKENDS, "mem", backend)
    return backend


@pytest.fixture
def published(clean_env, store: MemoryBackend, digits_train: SampleSet, digits_test: SampleSet) -> str:
    uri = "mem://bucket/datasets/digits"
    publish_dataset(digits_train, digits_test, uri, source="digits", shard_size=500)
    return uri


def test_a_published_copy_keeps_ids_and_fingerprint(published: str, store: MemoryBackend,
                                                    digits_train: SampleSet) -> None:
    names = {uri.removeprefix(published + "/") for uri in store.objects}
    assert {"dataset.json", "lethe-manifest.json", "train/shard-00002.npz", "test/shard-00000.npz",
            "train/shard-00002.npz.sha256"} <= names and "train/shard-00003.npz" not in names
    card = json.loads(store.objects[f"{published}/dataset.json"])
    assert card["format"] == "lethe-dataset/1" and card["source"] == "digits"
    assert card["image_size"] == [8, 8] and card["in_channels"] == 1 and card["num_classes"] == 10
    assert card["splits"]["train"] == {"size": 1438, "fingerprint": digits_train.fingerprint()}
    copy = load_dataset(published, "train")  # a bare URI is the `shards:` set it names
    assert copy.name == f"shards:{published}"
    assert copy.ids[17] == "digits/train/17" and copy.ids == digits_train.ids
    assert copy.fingerprint() == digits_train.fingerprint()
    assert copy.classes == digits_train.classes and copy.normalization == digits_train.normalization


def test_metadata_is_published_with_the_samples(clean_env, store: MemoryBackend, digits_train: SampleSet,
                                                digits_test: SampleSet) -> None:
    def tagged(samples: SampleSet) -> SampleSet:
        return samples.with_metadata({"source": [f"site-{i % 4}" for i in range(len(samples))]})

    uri = "mem://bucket/datasets/tagged"
    with pytest.raises(DataError, match="different metadata columns"):
        publish_dataset(tagged(digits_train), digits_test, uri, source="digits")
    assert not any(key.startswith(uri) for key in store.objects)  # refused before the first write
    card = publish_dataset(tagged(digits_train), tagged(digits_test), uri, source="digits", shard_size=500)
    assert card.metadata == ["source"]
    assert json.loads(store.objects[f"{uri}/dataset.json"])["metadata"] == ["source"]
    copy = load_dataset(uri, "train")
    assert copy.metadata == tagged(digits_train).metadata and copy.fingerprint() == digits_train.fingerprint()
    assert copy.ids_where("source", "site-2") == [i for k, i in enumerate(digits_train.ids) if k % 4 == 2]


def test_a_data_set_published_before_metadata_still_loads(clean_env, store: MemoryBackend, tmp_path: Path,
                                                         digits_train: SampleSet,
                                                         digits_test: SampleSet) -> None:
    """The layout and card today's main publishes (`lethe-dataset/1`, no metadata key) read the same."""
    folder = tmp_path / "old"
    for samples in (digits_train, digits_test):
        write_shards(samples, folder, shard_size=1000)
    old_card = {"format": "lethe-dataset/1", "source": "digits", "num_classes": 10,
                "classes": list(digits_train.classes), "in_channels": 1, "image_size": [8, 8],
                "normalization": digits_train.normalization.to_dict(),
                "splits": {s.split: {"size": len(s), "fingerprint": s.fingerprint()} for s in (digits_train,
                                                                                            digits_test)}}
    (folder / "dataset.json").write_text(json.dumps(old_card, indent=2) + "\n")
    put_dir(folder, "mem://bucket/datasets/old")
    copy = load_dataset("mem://bucket/datasets/old", "train")
    assert copy.fingerprint() == digits_train.fingerprint() and copy.metadata == {}
    card = read_dataset_card("mem://bucket/datasets/old")
    assert card.metadata == [] and card.splits["test"].size == 359 and card.source == "digits"
    # A card of the right format with a field of the wrong type is refused in one line.
    old_card["num_classes"] = "ten"
    (folder / "dataset.json").write_text(json.dumps(old_card))
    put_dir(folder, "mem://bucket/datasets/bad")
    with pytest.raises(DataError, match=r"not .*set card \(lethe-dataset/1\): field num_classes"):
        load_dataset("mem://bucket/datasets/bad", "train")


def test_a_changed_shard_is_refused(published: str, store: MemoryBackend) -> None:
    shard = f"{published}/train/shard-00001.npz"
    original = store.objects[shard]
    store.objects[shard] = original[:-1] + bytes([original[-1] ^ 1])
    with pytest.raises(IntegrityError, match="altered"):
        load_dataset(published, "train")
    # Shard and sidecar replaced together: the manifest still tells.
    store.objects[shard + ".sha256"] = f"{hashlib.sha256(store.objects[shard]).hexdigest()}  x\n".encode()
    with pytest.raises(IntegrityError, match="manifest"):
        load_dataset(published, "train")
    store.objects[shard] = original
    store.objects[shard + ".sha256"] = f"{hashlib.sha256(original).hexdigest()}  x\n".encode()
    assert len(load_dataset(published, "train")) == 1438


def test_other_data_is_not_published_over_a_data_set(published: str, digits_train: SampleSet,
                                                     digits_test: SampleSet) -> None:
    other = digits_train.subset(torch.arange(100))
    with pytest.raises(DataError, match="other data"):
        publish_dataset(other, digits_test, published, source="digits")
    publish_dataset(digits_train, digits_test, published, source="digits")  # the same again: fine


def _relabelled(train: SampleSet) -> SampleSet:
    labels = train.labels.clone()
    labels[0] = (labels[0] + 1) % 10
    return SampleSet(name="digits-relabelled", split="train", ids=train.ids, inputs=train.inputs,
                     labels=labels, num_classes=10, normalization=train.normalization, classes=train.classes)


def test_only_the_models_own_data_fits(digits_convnet_dir: Path, digits_train: SampleSet) -> None:
    card = read_card(digits_convnet_dir)
    assert card.dataset == "digits" and card.dataset_fingerprint == digits_train.fingerprint()
    check_model_fits(card, digits_train)
    with pytest.raises(ModelError, match="not the one the model was trained on"):
        check_model_fits(card, _relabelled(digits_train))  # same shape, same classes, one label differs
    bigger = SampleSet(name="big", split="train", ids=digits_train.ids,
                       inputs=torch.zeros(len(digits_train), 1, 28, 28, dtype=torch.uint8),
                       labels=digits_train.labels, num_classes=10, normalization=digits_train.normalization)
    with pytest.raises(ModelError, match="takes 8x8 images but data set big has 28x28"):
        check_model_fits(card, bigger)


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="Fashion-MNIST (Debian dataset-fashion-mnist) is absent")
@pytest.mark.parametrize("command", ["unlearn", "evaluate"])
def test_a_digits_model_meeting_fashion_mnist_is_refused(command: str, digits_convnet_dir: Path,
                                                         clean_env, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    argv = [command, "--model", str(digits_convnet_dir), "--dataset", "fashion-mnist", "--forget-class", "1",
            "--out", str(out), "--no-progress"]
    if command == "evaluate":
        argv += ["--parent", str(digits_convnet_dir), "--scenario", "class"]
    started = time.perf_counter()
    assert main(argv) == 2
    seconds = time.perf_counter() - started
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "takes 8x8 images but data set fashion-mnist has 28x28" in err
    assert not out.exists() and not (tmp_path / "home" / "artifacts").exists()
    assert seconds < 30  # loading Fashion-MNIST is the cost; nothing is computed


def test_the_published_copy_serves_the_model_and_the_cache(published: str, digits_convnet_dir: Path,
                                                          clean_env, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    """`lethe unlearn` with the copy named by LETHE_DATASET_URI; the second run reads the importances
    the first stored in the cache (the pipelines' cache, under LETHE_ARTIFACTS)."""
    clean_env.setenv("LETHE_DATASET_URI", published)
    base = ["unlearn", "--model", str(digits_convnet_dir), "--forget-class", "5", "--alpha", "8",
            "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    first = json.loads((tmp_path / "a" / "dampening.json").read_text())
    assert first["importances"]["computed"] is True
    cached = list((tmp_path / "home" / "artifacts" / "importances").rglob("*.safetensors"))
    assert len(cached) == 1 and first["importances"]["cache_uri"] == str(cached[0])
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "b")]) == 0
    assert "from the cache" in capsys.readouterr().out
    second = json.loads((tmp_path / "b" / "dampening.json").read_text())
    assert second["importances"]["computed"] is False
    assert second["importances"]["sha256"] == first["importances"]["sha256"]
    assert second["candidate_fingerprint"] == first["candidate_fingerprint"]
    # The candidate's card names the data it met and its fingerprint: its own descendants meet only it.
    card = read_card(tmp_path / "b")
    assert card.dataset == f"shards:{published}" and card.dataset_fingerprint == first_fingerprint(published)
    assert card.image_size == [8, 8]
    assert main([*base, "--no-cache", "--out", str(tmp_path / "c")]) == 0
    assert json.loads((tmp_path / "c" / "dampening.json").read_text())["importances"]["computed"] is True


def first_fingerprint(uri: str) -> str:
    from lethe.storage import get_bytes

    return json.loads(get_bytes(f"{uri}/dataset.json"))["splits"]["train"]["fingerprint"]


def test_store_only_refuses_every_local_source(published: str, clean_env, digits_convnet_dir: Path,
                                               digits_train: SampleSet, tmp_path: Path) -> None:
    local = tmp_path / "shards"
    publish_dataset(digits_train, digits_train, f"file://{local}", source="digits", shard_size=2000)
    map_file = tmp_path / "map.csv"
    map_file.write_text("subject_id,sample_id\nann,digits/train/3\n")
    clean_env.setenv("LETHE_STORE_ONLY", "1")
    for name in ("digits", "fashion-mnist", "cifar10", f"imagefolder:{tmp_path}", f"shards:{local}",
                 f"file://{local}"):
        with pytest.raises(DataError, match="LETHE_STORE_ONLY"):
            load_dataset(name, "train")
    with pytest.raises(DataError, match="LETHE_STORE_ONLY"):
        subject_map(digits_train, map_file)
    assert load_dataset(published, "test").fingerprint() == load_dataset(published, "test").fingerprint()
    # A step with no data set named reads the model card's (`digits`): refused, nothing written.
    with pytest.raises(DataError, match="LETHE_STORE_ONLY"):
        unlearn(digits_convnet_dir, forget_class=1, alpha=8, out_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    clean_env.setenv("LETHE_DATASET_URI", published)
    request = load_forget_set(None, read_card(digits_convnet_dir), forget_class=1)
    assert request.dataset == f"shards:{published}" and len(request.split.forget) == 161


def test_subject_maps_from_object_storage(store: MemoryBackend, clean_env, digits_train: SampleSet,
                                          tmp_path: Path) -> None:
    map_file = tmp_path / "subjects.csv"
    map_file.write_text("subject_id,sample_id\nAnn@X.org,digits/train/3\nann@x.org,digits/train/4\n"
                        "bob,digits/train/5\n")
    uri = "mem://bucket/subjects/subjects.csv"
    assert publish_subject_map(map_file, uri) == 3
    assert store.objects[uri] == map_file.read_bytes() and uri + ".sha256" in store.objects
    clean_env.setenv("LETHE_SUBJECT_MAP", uri)  # the configured map is the default
    assert subject_map(digits_train) == {"Ann@X.org": ["digits/train/3"], "ann@x.org": ["digits/train/4"],
                                         "bob": ["digits/train/5"]}
    # An update is a publish again; a map whose bytes differ from their sidecar is refused.
    map_file.write_text("subject_id,sample_id\nbob,digits/train/6\n")
    assert publish_subject_map(map_file, uri) == 1
    assert subject_map(digits_train) == {"bob": ["digits/train/6"]}
    store.objects[uri] += b"eve,digits/train/7\n"
    with pytest.raises(IntegrityError, match="publish-subjects"):
        subject_map(digits_train)
    with pytest.raises(DataError, match="object storage"):
        publish_subject_map(map_file, str(tmp_path / "copy.csv"))


def test_publish_through_the_cli(clean_env, store: MemoryBackend, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "publish", "--dataset", "digits", "--to", "mem://b/d", "--shard-size", "1000"]) == 0
    out = capsys.readouterr().out
    assert "published digits to mem://b/d (train 1438, test 359 samples" in out
    assert "LETHE_DATASET_URI=mem://b/d" in out
    assert sorted(u for u in store.objects if u.endswith(".npz")) == [
        "mem://b/d/test/shard-00000.npz", "mem://b/d/train/shard-00000.npz", "mem://b/d/train/shard-00001.npz"]


@pytest.mark.parametrize("overlay", ["local", "production"])
def test_the_cluster_reads_its_data_only_from_object_storage(overlay: str) -> None:
    """The ConfigMap names the data set and the subject map in the bucket and sets LETHE_STORE_ONLY,
    and every pipeline task gets the three (components/platform.py CONFIG_KEYS)."""
    platform = pytest.importorskip("components.platform", reason="kfp or the components are not importable")
    from lethe.config import Settings
    from tests.unit.test_infra import config

    cfg = config(overlay)
    keys = ("LETHE_DATASET_URI", "LETHE_SUBJECT_MAP", "LETHE_STORE_ONLY")
    assert all(platform.CONFIG_KEYS.get(key) == key for key in keys)
    with pytest.MonkeyPatch.context() as patch:
        for key in keys:
            patch.setenv(key, cfg[key])
        settings = Settings()
    assert settings.store_only
    assert settings.dataset_uri.startswith("s3://") and settings.subject_map.startswith("s3://")
    bucket = settings.dataset_uri.split("/")[2]
    assert bucket in cfg["LETHE_BUCKETS"].split() and cfg["LETHE_ARTIFACTS"].startswith(f"s3://{bucket}/")


@pytest.mark.slow  # registers a champion and loads Fashion-MNIST (5 s)
@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="Fashion-MNIST (Debian dataset-fashion-mnist) is absent")
def test_the_scheduled_pipeline_refuses_fashion_mnist_for_a_digits_champion(digits_convnet_dir: Path,
                                                                            tmp_path: Path) -> None:
    """collect-requests, the scheduled pipeline's first step, refuses before it claims anything."""
    from lethe.steps.collect import collect_requests
    from tests.pipelines.helpers import file_requests, lethe_home, register_champion, states

    with lethe_home(tmp_path / "home"):
        register_champion(digits_convnet_dir)
        request_id = file_requests(["subject-00003"])[0]
        with pytest.raises(ModelError, match="takes 8x8 images but data set fashion-mnist has 28x28"):
            collect_requests("run-1", forget_path=tmp_path / "forget", model_dir=tmp_path / "champion",
                             dataset="fashion-mnist")
        assert states() == {request_id: "pending"} and not (tmp_path / "forget").exists()
