"""Sharded tensor files under any storage URI (a local path, `s3://`, ...): data at rest in an object store.

Layout under a root URI:

    <root>/dataset.json            {"num_classes": 10, "classes": [...], "normalization": {...}}
    <root>/<split>/<any>.npz       arrays: ids (str), inputs (uint8 [N,C,H,W] or [N,H,W]), labels (int)
    <root>/<split>/<any>.safetensors  tensors inputs, labels; metadata "ids": JSON list of str

Shards are read one at a time in name order (`iter_shards`), so a pass over the data never
holds more than one shard; `load_shards` concatenates them.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lethe.data.sampleset import Normalization, SampleSet, concat
from lethe.errors import DataError, StorageError
from lethe.storage import ArtifactNotFoundError, get_unverified_bytes, join_uri, list_uris

SUFFIXES = (".npz", ".safetensors")
META_FILE = "dataset.json"


def _read_bytes(uri: str) -> bytes | None:
    """The raw bytes, or None when there is no object. Shards are published without sha256
    sidecars today, so these reads are unverified."""
    try:
        return get_unverified_bytes(uri)
    except ArtifactNotFoundError:
        return None
    except StorageError as exc:
        raise DataError(f"cannot read {uri}: {exc}") from exc


def _list(folder: str) -> list[str]:
    try:
        return list_uris(folder)
    except StorageError as exc:
        raise DataError(f"cannot list {folder}: {exc}") from exc


def _shard_uris(root: str, split: str) -> list[str]:
    folder = join_uri(root, split)
    shards = [u for u in _list(folder) if u.endswith(SUFFIXES)]
    if not shards:
        raise DataError(f"no shards ({', '.join(SUFFIXES)}) under {folder}")
    return shards


def read_meta(root: str) -> dict[str, Any]:
    raw = _read_bytes(join_uri(root, META_FILE))
    if raw is None:
        if not _list(root):
            raise DataError(f"no {META_FILE} in {root}: the shard root does not exist or is empty")
        raise DataError(f"no {META_FILE} in {root} (it states num_classes, classes, normalization)")
    try:
        meta = json.loads(raw)
        meta["num_classes"] = int(meta["num_classes"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"malformed {join_uri(root, META_FILE)}: {exc}") from exc
    return meta


def _decode_npz(raw: bytes, uri: str) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            ids = [str(i) for i in archive["ids"].tolist()]
            inputs = archive["inputs"]
            labels = archive["labels"] if "labels" in archive.files else None
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"corrupt shard {uri}: {exc}") from exc
    return ids, inputs, labels


def _decode_safetensors(raw: bytes, uri: str) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    from safetensors.numpy import load

    try:
        arrays = load(raw)
        # The ids are strings, which safetensors cannot hold as tensors: they live in the header.
        header_size = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + header_size])
        ids = json.loads(header.get("__metadata__", {})["ids"])
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise DataError(f"corrupt shard {uri}: {exc}") from exc
    if "inputs" not in arrays:
        raise DataError(f"corrupt shard {uri}: no 'inputs' tensor")
    return [str(i) for i in ids], arrays["inputs"], arrays.get("labels")


def read_shard(uri: str, *, name: str, split: str, meta: dict[str, Any]) -> SampleSet:
    raw = _read_bytes(uri)
    if raw is None:
        raise DataError(f"shard {uri} disappeared while reading")
    decode = _decode_npz if uri.endswith(".npz") else _decode_safetensors
    ids, inputs, labels = decode(raw, uri)
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
    channels = int(inputs.shape[1])
    normalization = (Normalization.from_dict(meta["normalization"]) if "normalization" in meta
                     else Normalization.uniform(channels))
    try:
        return SampleSet(name=name, split=split, ids=ids, inputs=torch.from_numpy(inputs.copy()),
                         labels=tensor_labels, num_classes=meta["num_classes"],
                         normalization=normalization, classes=meta.get("classes"))
    except DataError as exc:
        raise DataError(f"shard {uri}: {exc}") from exc


def iter_shards(root: str, split: str) -> Iterator[SampleSet]:
    """One SampleSet per shard, read lazily in name order."""
    meta = read_meta(root)
    name = f"shards:{root}"
    for uri in _shard_uris(root, split):
        yield read_shard(uri, name=name, split=split, meta=meta)


def load_shards(root: str, split: str) -> SampleSet:
    return concat(list(iter_shards(root, split)))


def write_shards(samples: SampleSet, root: str | Path, *, shard_size: int, fmt: str = "npz") -> list[Path]:
    """Write `samples` as shards under a local `root` (upload them with lethe.storage if needed)."""
    if fmt not in ("npz", "safetensors"):
        raise DataError(f"unknown shard format {fmt!r}; expected npz or safetensors")
    root = Path(root)
    folder = root / samples.split
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"num_classes": samples.num_classes, "normalization": samples.normalization.to_dict(),
            "classes": list(samples.classes) if samples.classes else None, "source": samples.name}
    (root / META_FILE).write_text(json.dumps({k: v for k, v in meta.items() if v is not None}, indent=2))
    written: list[Path] = []
    for number, start in enumerate(range(0, len(samples), shard_size)):
        part = samples.subset(torch.arange(start, min(start + shard_size, len(samples))))
        path = folder / f"shard-{number:05d}.{fmt}"
        arrays: dict[str, np.ndarray] = {"inputs": part.inputs.numpy()}
        if part.labels is not None:
            arrays["labels"] = part.labels.numpy()
        if fmt == "npz":
            np.savez(path, ids=np.array(part.ids), **arrays)
        else:
            from safetensors.numpy import save_file

            save_file(arrays, str(path), metadata={"ids": json.dumps(part.ids)})
        written.append(path)
    return written
