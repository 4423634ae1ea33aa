"""CIFAR-10, CIFAR-100 and CIFAR-20 (CIFAR-100's 20 superclasses, as in the SSD paper).

Read through torchvision from a data dir holding the extracted "python version" archives
(`cifar-10-batches-py/`, `cifar-100-python/`); torchvision checks their md5 sums. Its CIFAR100
keeps only the fine labels, so the coarse ones are read from the same pickles here. The class
names come from the files; the rest of each set's card (normalisation) is its row's, in
`lethe.data.catalog`.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from lethe.data.catalog import LoadOptions
from lethe.data.sampleset import SampleSet
from lethe.errors import DataError

_FOLDER = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python", "cifar20": "cifar-100-python"}
_ARCHIVE = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}


def _root(name: str, data_dir: str | Path | None) -> Path:
    archive = _ARCHIVE.get(name, _ARCHIVE["cifar100"])
    if data_dir is None:
        raise DataError(f"{name} needs a data dir (--data-dir or LETHE_DATA_DIR) holding the extracted "
                        f"{archive} ({_FOLDER[name]}/)")
    root = Path(data_dir)
    if root.name == _FOLDER[name]:  # pointed at the extracted folder itself
        root = root.parent
    if not (root / _FOLDER[name]).is_dir():
        raise DataError(f"no {_FOLDER[name]}/ in {data_dir}: extract {archive} there")
    return root


def _read_pickle(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            return pickle.load(handle, encoding="latin1")  # the official CIFAR files are pickles
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        raise DataError(f"corrupt CIFAR file {path}: {exc}") from exc


def load(split: str, options: LoadOptions) -> SampleSet:
    from torchvision.datasets import CIFAR10, CIFAR100

    name, card = options.name, options.card
    assert card is not None and name in _FOLDER  # the cifar rows
    root = _root(name, options.data_dir)
    dataset_class = CIFAR10 if name == "cifar10" else CIFAR100
    try:
        dataset = dataset_class(str(root), train=split == "train", download=False)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, KeyError, ValueError) as exc:
        raise DataError(f"cannot read {name} from {root}: {exc}") from exc
    images = torch.from_numpy(np.ascontiguousarray(dataset.data)).permute(0, 3, 1, 2).contiguous()
    classes: list[str] = list(dataset.classes)
    if name == "cifar20":
        files = dataset.train_list if split == "train" else dataset.test_list
        coarse: list[int] = []
        for file_name, _ in files:
            entry = _read_pickle(root / _FOLDER[name] / file_name)
            if "coarse_labels" not in entry:
                raise DataError(f"{file_name} in {root / _FOLDER[name]} has no coarse labels")
            coarse.extend(entry["coarse_labels"])
        labels = torch.tensor(coarse, dtype=torch.int64)
        meta = _read_pickle(root / _FOLDER[name] / dataset.meta["filename"])
        classes = list(meta.get("coarse_label_names", [str(c) for c in range(20)]))
    else:
        labels = torch.tensor(dataset.targets, dtype=torch.int64)
    if len(labels) != len(images):
        raise DataError(f"{name}/{split} in {root}: {len(images)} images but {len(labels)} labels")
    return SampleSet(
        name=name,
        split=split,
        ids=[f"{name}/{split}/{i}" for i in range(len(labels))],
        inputs=images,
        labels=labels,
        num_classes=len(classes),
        normalization=card.normalization,
        classes=classes,
    )
