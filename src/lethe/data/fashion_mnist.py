"""Fashion-MNIST (60,000 train / 10,000 test, 28x28 grey, 10 classes) from its original IDX files.

Where the files are looked for, in order: the data dir given (flag or LETHE_DATA_DIR; an
explicit dir must hold them), the Debian package `dataset-fashion-mnist`, a torchvision download
into `LETHE_HOME/data` when online. Its card (classes, normalisation) is its row's, in
`lethe.data.catalog`.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import torch

from lethe.data.catalog import LoadOptions
from lethe.data.idx import read_idx
from lethe.data.sampleset import SampleSet
from lethe.errors import DataError

log = logging.getLogger(__name__)

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")  # where dataset-fashion-mnist installs them
_PREFIX = {"train": "train", "test": "t10k"}
_SIZES = {"train": 60_000, "test": 10_000}
HOW_TO_GET = ("install the Debian package (apt-get install dataset-fashion-mnist) or pass --data-dir / "
              "set LETHE_DATA_DIR to a folder with the four *-ubyte.gz files")


def _files_in(folder: Path, split: str) -> tuple[Path, Path] | None:
    """The (images, labels) pair in `folder` or its usual sub-folders, gzipped or not."""
    prefix = _PREFIX[split]
    for base in (folder, folder / "fashion-mnist", folder / "FashionMNIST" / "raw"):
        for suffix in (".gz", ""):
            images = base / f"{prefix}-images-idx3-ubyte{suffix}"
            labels = base / f"{prefix}-labels-idx1-ubyte{suffix}"
            if images.is_file() and labels.is_file():
                return images, labels
    return None


def _torchvision_dataset() -> type:
    from torchvision.datasets import FashionMNIST

    return FashionMNIST


def _download(root: Path) -> None:
    dataset = _torchvision_dataset()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(15)  # offline machines should fail fast, not hang
    try:
        for train in (True, False):
            dataset(str(root), train=train, download=True)
    except Exception as exc:  # torchvision raises RuntimeError/URLError/OSError depending on the cause
        raise DataError(f"Fashion-MNIST not found and the download failed ({exc.__class__.__name__}): "
                        f"{HOW_TO_GET}") from exc
    finally:
        socket.setdefaulttimeout(previous)


def find_files(split: str, data_dir: str | Path | None, download_root: Path | None) -> tuple[Path, Path]:
    if data_dir is not None:
        folder = Path(data_dir)
        if not folder.is_dir():
            raise DataError(f"data dir {folder} does not exist")
        found = _files_in(folder, split)
        if found is None:
            raise DataError(f"no Fashion-MNIST {split} IDX files in {folder} "
                            f"(expected {_PREFIX[split]}-images-idx3-ubyte.gz and "
                            f"{_PREFIX[split]}-labels-idx1-ubyte.gz)")
        return found
    for folder in (DEBIAN_DIR, download_root):
        if folder is not None and (found := _files_in(folder, split)) is not None:
            return found
    if download_root is None:
        raise DataError(f"Fashion-MNIST not found: {HOW_TO_GET}")
    log.warning("Fashion-MNIST not found locally; downloading it with torchvision into %s", download_root)
    _download(download_root)
    found = _files_in(download_root, split)
    if found is None:
        raise DataError(f"Fashion-MNIST download left no IDX files in {download_root}: {HOW_TO_GET}")
    return found


def load(split: str, options: LoadOptions) -> SampleSet:
    card = options.card
    assert card is not None  # the row has one
    images_path, labels_path = find_files(split, options.data_dir, options.download_root)
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{images_path} holds {images.shape[0]} images but {labels_path} "
                        f"{labels.shape[0]} labels")
    if images.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: images are {images.shape[1:]}, Fashion-MNIST's are 28x28")
    if images.shape[0] != _SIZES[split]:
        log.warning("%s holds %d images; Fashion-MNIST's %s split has %d", images_path, images.shape[0],
                    split, _SIZES[split])
    if labels.size and int(labels.max()) >= card.num_classes:
        raise DataError(f"corrupt IDX file {labels_path}: label {int(labels.max())} outside 0..9")
    return SampleSet(
        name="fashion-mnist",
        split=split,
        ids=[f"fashion-mnist/{split}/{i}" for i in range(images.shape[0])],
        inputs=torch.from_numpy(images.copy()).unsqueeze(1),
        labels=torch.from_numpy(labels.astype("int64")),
        num_classes=card.num_classes,
        normalization=card.normalization,
        classes=card.classes,
    )
