"""Every loader on tiny files written here, and every bad input: one DataError each."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from lethe.data import SampleSet, iter_shards, load_dataset, write_shards
from lethe.data import fashion_mnist as fm
from lethe.data.idx import write_idx
from lethe.errors import DataError


def fashion_files(folder: Path, n_train: int = 12, n_test: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    images = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    labels = (np.arange(n_train) % 10).astype(np.uint8)
    write_idx(folder / "train-images-idx3-ubyte.gz", images)
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", (np.arange(n_test) % 10).astype(np.uint8))
    return images, labels


def test_fashion_mnist_from_data_dir(tmp_path: Path) -> None:
    images, labels = fashion_files(tmp_path)
    train = load_dataset("fashion-mnist", "train", data_dir=tmp_path)
    assert train.ids[:2] == ["fashion-mnist/train/0", "fashion-mnist/train/1"] and len(train) == 12
    assert torch.equal(train.inputs[:, 0], torch.from_numpy(images))
    assert train.labels.tolist() == labels.tolist() and train.num_classes == 10
    assert len(load_dataset("fashion-mnist", "test", data_dir=tmp_path)) == 6
    assert load_dataset("fashion-mnist", "train", data_dir=tmp_path).ids == train.ids


def test_fashion_mnist_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fashion_files(tmp_path / "fashion-mnist")  # a sub-folder is found too
    monkeypatch.setenv("LETHE_DATA_DIR", str(tmp_path))
    assert len(load_dataset("fashion-mnist", "train")) == 12


@pytest.mark.skipif(not (fm.DEBIAN_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_from_debian(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LETHE_DATA_DIR", raising=False)
    test = load_dataset("fashion-mnist", "test")
    assert len(test) == 10_000 and test.inputs.shape[1:] == (1, 28, 28)
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert test.ids[-1] == "fashion-mnist/test/9999"


def _corrupt(folder: Path, how: str) -> None:
    path = folder / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    if how == "not-gzip":
        path.write_bytes(b"definitely not gzip")
    elif how == "magic":
        path.write_bytes(gzip.compress(b"\x12\x34" + raw[2:]))
    elif how == "type":
        path.write_bytes(gzip.compress(raw[:2] + b"\x0d" + raw[3:]))
    elif how == "truncated":
        path.write_bytes(gzip.compress(raw[:-100]))
    elif how == "gzip-truncated":
        path.write_bytes(path.read_bytes()[:-20])
    elif how == "count":
        write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(5, dtype=np.uint8))
    elif how == "label":
        write_idx(folder / "train-labels-idx1-ubyte.gz", np.full(12, 10, dtype=np.uint8))


CORRUPTIONS = ["not-gzip", "magic", "type", "truncated", "gzip-truncated", "count", "label"]


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_corrupt_idx_files_refused(tmp_path: Path, how: str) -> None:
    fashion_files(tmp_path)
    _corrupt(tmp_path, how)
    with pytest.raises(DataError, match="corrupt|holds 12 images"):
        load_dataset("fashion-mnist", "train", data_dir=tmp_path)


def test_wrong_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("fashion-mnist", "train", data_dir=tmp_path / "nowhere")
    with pytest.raises(DataError, match="no Fashion-MNIST train IDX files"):
        load_dataset("fashion-mnist", "train", data_dir=tmp_path)


def test_offline_without_files_says_how_to_get_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("network unreachable")  # what torchvision's download raises offline

    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setattr(fm, "_torchvision_dataset", lambda: offline)
    monkeypatch.delenv("LETHE_DATA_DIR", raising=False)
    monkeypatch.setenv("LETHE_HOME", str(tmp_path / "home"))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist.*--data-dir"):
        load_dataset("fashion-mnist", "train")


def test_unknown_dataset_and_split() -> None:
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        load_dataset("mnist", "train")
    with pytest.raises(DataError, match="unknown split"):
        load_dataset("digits", "validation")
    with pytest.raises(DataError, match="names no location"):
        load_dataset("shards:", "train")


# CIFAR: the real files' layout, tiny, with torchvision's md5 check switched off for the fakes.

def _pickle(path: Path, entry: dict) -> None:
    path.write_bytes(pickle.dumps(entry))


def cifar_files(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny CIFAR-10 (2 images per batch) and CIFAR-100 (4 per split) pickles under `folder`, with
    torchvision's md5 check switched off for them."""
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)
    rng = np.random.default_rng(0)
    c10 = folder / "cifar-10-batches-py"
    c10.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        _pickle(c10 / name, {"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [1, 2]})
    _pickle(c10 / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    c100 = folder / "cifar-100-python"
    c100.mkdir()
    for name in ("train", "test"):
        _pickle(c100 / name, {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                              "fine_labels": [0, 57, 99, 3], "coarse_labels": [4, 19, 0, 7]})
    _pickle(c100 / "meta", {"fine_label_names": [f"f{i}" for i in range(100)],
                            "coarse_label_names": [f"s{i}" for i in range(20)]})


def test_cifar10_and_cifar20(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cifar_files(tmp_path, monkeypatch)
    c10, c100 = tmp_path / "cifar-10-batches-py", tmp_path / "cifar-100-python"
    train = load_dataset("cifar10", "train", data_dir=tmp_path)
    assert len(train) == 10 and train.inputs.shape[1:] == (3, 32, 32) and train.ids[3] == "cifar10/train/3"
    first = pickle.loads((c10 / "data_batch_1").read_bytes())["data"][0]
    assert torch.equal(train.inputs[0], torch.from_numpy(first.reshape(3, 32, 32)))
    fine = load_dataset("cifar100", "test", data_dir=tmp_path)
    coarse = load_dataset("cifar20", "test", data_dir=c100)  # pointing at the folder itself works too
    assert fine.labels.tolist() == [0, 57, 99, 3] and fine.num_classes == 100
    assert coarse.labels.tolist() == [4, 19, 0, 7] and coarse.num_classes == 20
    assert coarse.classes[19] == "s19" and coarse.ids[0] == "cifar20/test/0"


def test_cifar_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LETHE_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="needs a data dir"):
        load_dataset("cifar10", "train")
    with pytest.raises(DataError, match="no cifar-10-batches-py"):
        load_dataset("cifar10", "train", data_dir=tmp_path)
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(DataError, match="cannot read cifar10"):  # torchvision's integrity check
        load_dataset("cifar10", "train", data_dir=tmp_path)


# Image folders

def _png(path: Path, size: tuple[int, int], colour: tuple[int, int, int], mode: str = "RGB") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour if mode == "RGB" else colour[0]).save(path)


def test_image_folder(tmp_path: Path) -> None:
    _png(tmp_path / "train" / "cat" / "a.png", (40, 30), (255, 0, 0))
    _png(tmp_path / "train" / "cat" / "b.jpg", (16, 16), (0, 255, 0))
    _png(tmp_path / "train" / "dog" / "sub" / "c.png", (64, 64), (200, 0, 0), mode="L")
    (tmp_path / "train" / "dog" / "notes.txt").write_text("not an image")
    _png(tmp_path / "test" / "dog" / "d.png", (8, 8), (0, 0, 255))
    train = load_dataset(f"imagefolder:{tmp_path}", "train", image_size=12)
    assert train.ids == ["train/cat/a.png", "train/cat/b.jpg", "train/dog/sub/c.png"]
    assert train.inputs.shape == (3, 3, 12, 12) and train.labels.tolist() == [0, 0, 1]
    assert train.classes == ("cat", "dog")
    assert train.inputs[0, :, 5, 5].tolist() == [255, 0, 0]
    assert train.inputs[2, :, 5, 5].tolist() == [200, 200, 200]  # grey became RGB
    test = load_dataset(f"imagefolder:{tmp_path}", "test", image_size=12)
    assert test.ids == ["test/dog/d.png"] and test.labels.tolist() == [1] and test.num_classes == 2


def test_image_folder_metadata_from_its_csv(tmp_path: Path) -> None:
    _png(tmp_path / "train" / "cat" / "a.png", (8, 8), (255, 0, 0))
    _png(tmp_path / "train" / "dog" / "b.png", (8, 8), (0, 255, 0))
    _png(tmp_path / "test" / "dog" / "c.png", (8, 8), (0, 0, 255))
    csv = tmp_path / "metadata.csv"
    csv.write_text("id,source,taken\ntrain/dog/b.png,phone,2021-03\ntrain/cat/a.png,scanner,2020-01\n"
                   "test/dog/c.png,phone,2022-07\n")
    train = load_dataset(f"imagefolder:{tmp_path}", "train", image_size=4)
    assert train.metadata == {"source": ["scanner", "phone"], "taken": ["2020-01", "2021-03"]}
    assert train.ids_where("source", "phone") == ["train/dog/b.png"]
    assert load_dataset(f"imagefolder:{tmp_path}", "test", image_size=4).metadata["taken"] == ["2022-07"]
    csv.write_text("id,source\ntrain/cat/a.png,scanner\n")
    with pytest.raises(DataError, match="no row for 1 of 2 images, e.g. train/dog/b.png"):
        load_dataset(f"imagefolder:{tmp_path}", "train")
    csv.write_text("id,source\ntrain/cat/a.png,scanner\ntrain/dog/b.png\n")
    with pytest.raises(DataError, match="the row of train/dog/b.png has 0 values for 1 columns"):
        load_dataset(f"imagefolder:{tmp_path}", "train")
    csv.write_text("path,source\n")
    with pytest.raises(DataError, match="the header must be id,<column>"):
        load_dataset(f"imagefolder:{tmp_path}", "train")


def test_image_folder_bad_input(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"imagefolder:{tmp_path / 'none'}", "train")
    with pytest.raises(DataError, match="no train/"):
        load_dataset(f"imagefolder:{tmp_path}", "train")
    _png(tmp_path / "train" / "cat" / "a.png", (8, 8), (1, 2, 3))
    (tmp_path / "train" / "cat" / "broken.png").write_bytes(b"\x89PNG nope")
    with pytest.raises(DataError, match="cannot decode image .*broken.png"):
        load_dataset(f"imagefolder:{tmp_path}", "train")
    with pytest.raises(DataError, match="no test/"):
        load_dataset(f"imagefolder:{tmp_path}", "test")
    _png(tmp_path / "test" / "bird" / "b.png", (8, 8), (1, 2, 3))
    with pytest.raises(DataError, match="classes the train split lacks: bird"):
        load_dataset(f"imagefolder:{tmp_path}", "test")


# Shards

def _same(a: SampleSet, b: SampleSet) -> bool:
    return (a.ids == b.ids and torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)
            and a.num_classes == b.num_classes and a.normalization == b.normalization)


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
def test_local_shards_round_trip(tmp_path: Path, digits_test: SampleSet, fmt: str) -> None:
    written = write_shards(digits_test, tmp_path, shard_size=100, fmt=fmt)
    assert len(written) == 4
    loaded = load_dataset(f"shards:{tmp_path}", "test")
    assert _same(loaded, digits_test) and loaded.name == f"shards:{tmp_path}"
    assert [len(shard) for shard in iter_shards(str(tmp_path), "test")] == [100, 100, 100, 59]


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
def test_shards_carry_metadata(tmp_path: Path, digits_test: SampleSet, fmt: str) -> None:
    sources = [f"batch-{i % 3}" for i in range(len(digits_test))]
    tagged = digits_test.with_metadata({"source": sources, "note": [""] * len(digits_test)})
    write_shards(tagged, tmp_path, shard_size=100, fmt=fmt)
    loaded = load_dataset(f"shards:{tmp_path}", "test")
    assert loaded.metadata == tagged.metadata and _same(loaded, digits_test)
    assert loaded.fingerprint() == digits_test.fingerprint()
    assert loaded.ids_where("source", "batch-1") == tagged.ids_where("source", "batch-1")


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
def test_corrupt_or_incomplete_shards(tmp_path: Path, digits_test: SampleSet, fmt: str) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"shards:{tmp_path / 'none'}", "test")
    written = write_shards(digits_test.subset(torch.arange(20)), tmp_path, shard_size=10, fmt=fmt)
    with pytest.raises(DataError, match="no shards"):
        load_dataset(f"shards:{tmp_path}", "train")
    written[1].write_bytes(written[1].read_bytes()[:50])
    with pytest.raises(DataError, match="corrupt shard .*shard-00001"):
        load_dataset(f"shards:{tmp_path}", "test")
    (tmp_path / "dataset.json").unlink()
    with pytest.raises(DataError, match="no dataset.json"):
        load_dataset(f"shards:{tmp_path}", "test")


def test_shards_with_inconsistent_arrays(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "dataset.json").write_text('{"num_classes": 2}')
    np.savez(tmp_path / "train" / "a.npz", ids=np.array(["x", "y"]), inputs=np.zeros((3, 4, 4), np.uint8),
             labels=np.array([0, 1]))
    with pytest.raises(DataError, match="2 ids for 3 inputs"):
        load_dataset(f"shards:{tmp_path}", "train")
    np.savez(tmp_path / "train" / "a.npz", ids=np.array(["x"]), inputs=np.zeros((1, 4, 4), np.float32))
    with pytest.raises(DataError, match="expected uint8"):
        load_dataset(f"shards:{tmp_path}", "train")
    np.savez(tmp_path / "train" / "a.npz", ids=np.array(["x", "y"]), inputs=np.zeros((2, 4, 4), np.uint8))
    np.savez(tmp_path / "train" / "b.npz", ids=np.array(["y"]), inputs=np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(DataError, match="duplicate sample ids"):
        load_dataset(f"shards:{tmp_path}", "train")


def test_shards_on_s3(tmp_path: Path, digits_test: SampleSet, monkeypatch: pytest.MonkeyPatch) -> None:
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    written = write_shards(digits_test.subset(torch.arange(30)), tmp_path, shard_size=16, fmt="npz")
    with moto.mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="data")
        client.upload_file(str(tmp_path / "dataset.json"), "data", "digits/dataset.json")
        for path in written:
            client.upload_file(str(path), "data", f"digits/test/{path.name}")
        loaded = load_dataset("shards:s3://data/digits", "test")
        assert _same(loaded, digits_test.subset(torch.arange(30)))
        assert [len(s) for s in iter_shards("s3://data/digits", "test")] == [16, 14]
        with pytest.raises(DataError, match="no shards"):
            load_dataset("shards:s3://data/digits", "train")
        with pytest.raises(DataError, match="no dataset.json"):
            load_dataset("shards:s3://data/elsewhere", "test")
        with pytest.raises(DataError, match="cannot"):
            load_dataset("shards:s3://no-such-bucket/x", "test")
