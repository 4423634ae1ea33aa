"""One shard file, either format, both ways.

    <split>/<any>.npz          arrays: ids (str), inputs (uint8 [N,C,H,W] or [N,H,W]), labels (int),
                               and one `metadata.<column>` (str) per metadata column
    <split>/<any>.safetensors  tensors inputs, labels; header metadata "ids": JSON list of str, and
                               "metadata": JSON {column: [str, ...]} when there are columns

Readers that predate metadata ignore the extra arrays and header key, and read the same samples.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from lethe.data.dataset_record import CARD_FILE, DatasetRecord
from lethe.data.sampleset import SampleSet
from lethe.errors import DataError

SUFFIXES = (".npz", ".safetensors")
FORMATS = ("npz", "safetensors")
METADATA_PREFIX = "metadata."

Decoded = tuple[list[str], np.ndarray, np.ndarray | None, dict[str, list[str]]]


def _decode_npz(raw: bytes, uri: str) -> Decoded:
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            ids = [str(i) for i in archive["ids"].tolist()]
            inputs = archive["inputs"]
            labels = archive["labels"] if "labels" in archive.files else None
            columns = {key.removeprefix(METADATA_PREFIX): archive[key] for key in archive.files
                       if key.startswith(METADATA_PREFIX)}
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"corrupt shard {uri}: {exc}") from exc
    metadata = {}
    for column, values in columns.items():
        if values.dtype.kind != "U":
            raise DataError(f"shard {uri}: metadata column {column!r} is {values.dtype}, expected strings")
        metadata[column] = [str(v) for v in values.tolist()]
    return ids, inputs, labels, metadata


def _decode_safetensors(raw: bytes, uri: str) -> Decoded:
    from safetensors.numpy import load

    try:
        arrays = load(raw)
        # The ids are strings, which safetensors cannot hold as tensors: they live in the header.
        header_size = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + header_size]).get("__metadata__", {})
        ids = json.loads(header["ids"])
        metadata = json.loads(header.get("metadata", "{}"))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise DataError(f"corrupt shard {uri}: {exc}") from exc
    if "inputs" not in arrays:
        raise DataError(f"corrupt shard {uri}: no 'inputs' tensor")
    if not isinstance(metadata, dict):
        raise DataError(f"corrupt shard {uri}: its metadata is not a mapping of columns")
    return [str(i) for i in ids], arrays["inputs"], arrays.get("labels"), metadata


def read_shard(uri: str, raw: bytes, *, name: str, split: str, card: DatasetRecord) -> SampleSet:
    """One shard as a SampleSet, from its bytes."""
    decode = _decode_npz if uri.endswith(".npz") else _decode_safetensors
    ids, inputs, labels, metadata = decode(raw, uri)
    if inputs.dtype != np.uint8:
        raise DataError(f"shard {uri}: inputs are {inputs.dtype}, expected uint8 images")
    if inputs.ndim == 3:  # [N, H, W] grey images
        inputs = inputs[:, None]
    if inputs.ndim != 4:
        raise DataError(f"shard {uri}: inputs have shape {inputs.shape}, expected [N, C, H, W]")
    tensor_labels = None
    if labels is not None:
        if labels.dtype.kind not in "iu":
            raise DataError(f"shard {uri}: labels are {labels.dtype}, expected integers")
        tensor_labels = torch.from_numpy(labels.astype(np.int64))
    try:
        return SampleSet(name=name, split=split, ids=ids, inputs=torch.from_numpy(inputs.copy()),
                         labels=tensor_labels, num_classes=card.num_classes,
                         normalization=card.normalization_for(int(inputs.shape[1])), classes=card.classes,
                         metadata=metadata)
    except DataError as exc:
        raise DataError(f"shard {uri}: {exc}") from exc


def write_shards(samples: SampleSet, root: str | Path, *, shard_size: int, fmt: str = "npz") -> list[Path]:
    """Write `samples` as shards under a local `root`, with a plain card (upload them with
    lethe.storage if needed; `lethe.data.shards.publish_dataset` publishes both splits)."""
    if fmt not in FORMATS:
        raise DataError(f"unknown shard format {fmt!r}; expected {' or '.join(FORMATS)}")
    root = Path(root)
    folder = root / samples.split
    folder.mkdir(parents=True, exist_ok=True)
    DatasetRecord.of(samples, source=samples.name).write(root / CARD_FILE)
    written: list[Path] = []
    for number, start in enumerate(range(0, len(samples), shard_size)):
        part = samples.subset(torch.arange(start, min(start + shard_size, len(samples))))
        path = folder / f"shard-{number:05d}.{fmt}"
        arrays: dict[str, np.ndarray] = {"inputs": part.inputs.numpy()}
        if part.labels is not None:
            arrays["labels"] = part.labels.numpy()
        if fmt == "npz":
            columns = {METADATA_PREFIX + column: np.array(values, dtype=str)
                       for column, values in part.metadata.items()}
            np.savez(path, ids=np.array(part.ids), **arrays, **columns)
        else:
            from safetensors.numpy import save_file

            header = {"ids": json.dumps(part.ids)}
            if part.metadata:
                header["metadata"] = json.dumps(part.metadata)
            save_file(arrays, str(path), metadata=header)
        written.append(path)
    return written
