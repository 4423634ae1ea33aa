"""A user's own images: `<root>/<split>/<class>/<image>`; a sample's id is its path under `<root>`.

Every image is decoded once at load time (PIL), converted to RGB, resized to a fixed square
size and kept as uint8; the class list comes from the train split's folder names.

Per-sample metadata comes from an optional `<root>/metadata.csv`: a header `id,<column>,...` and
one row per image (`train/cat/a.png,clinic-b,...`); both splits' rows may share the file, and
every image of the split loaded needs its row.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from lethe.data.card import check_column_name
from lethe.data.catalog import LoadOptions
from lethe.data.sampleset import Normalization, SampleSet
from lethe.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DEFAULT_IMAGE_SIZE = 32
METADATA_FILE = "metadata.csv"
#: Without statistics of the user's data, map [0, 1] to [-1, 1].
NORMALIZATION = Normalization.uniform(3)


def _classes(root: Path) -> list[str]:
    train = root / "train"
    if not train.is_dir():
        raise DataError(f"image folder {root} has no train/ sub-folder (expected "
                        f"{root}/train/<class>/<image> and {root}/test/<class>/<image>)")
    classes = sorted(p.name for p in train.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"image folder {train} has no class sub-folders")
    return classes


def _decode(path: Path, size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot decode image {path}: {exc}") from exc


def read_metadata(root: Path, ids: list[str]) -> dict[str, list[str]]:
    """The columns of `<root>/metadata.csv` for `ids` (none without the file)."""
    path = root / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header or header[0] != "id" or len(header) < 2:
                raise DataError(f"{path}: the header must be id,<column>,... not {header}")
            columns = [check_column_name(c) for c in header[1:]]
            rows = {row[0]: row[1:] for row in reader if row}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    missing = [i for i in ids if i not in rows]
    if missing:
        raise DataError(f"{path} has no row for {len(missing)} of {len(ids)} images, e.g. {missing[0]}")
    short = next((i for i in ids if len(rows[i]) != len(columns)), None)
    if short is not None:
        raise DataError(f"{path}: the row of {short} has {len(rows[short])} values for {len(columns)} "
                        "columns")
    return {column: [rows[i][k] for i in ids] for k, column in enumerate(columns)}


def load(split: str, options: LoadOptions) -> SampleSet:
    return load_image_folder(options.argument, split, options.image_size or DEFAULT_IMAGE_SIZE)


def load_image_folder(root: str | Path, split: str, image_size: int = DEFAULT_IMAGE_SIZE) -> SampleSet:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    if image_size < 1:
        raise DataError(f"image size must be positive, got {image_size}")
    classes = _classes(root)
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataError(f"image folder {root} has no {split}/ sub-folder")
    unknown = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and p.name not in classes)
    if unknown:
        raise DataError(f"{split_dir} has classes the train split lacks: {', '.join(unknown[:5])}")
    ids: list[str] = []
    arrays: list[np.ndarray] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        folder = split_dir / name
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
            ids.append(path.relative_to(root).as_posix())
            arrays.append(_decode(path, image_size))
            labels.append(label)
    if not ids:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {split_dir}")
    inputs = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return SampleSet(
        name=f"imagefolder:{root}",
        split=split,
        ids=ids,
        inputs=inputs,
        labels=torch.tensor(labels, dtype=torch.int64),
        num_classes=len(classes),
        normalization=NORMALIZATION,
        classes=classes,
        metadata=read_metadata(root, ids),
    )
