"""Sharded tensor files under any storage URI (a local path, `s3://`, ...): data at rest in an object store.

Layout under a root URI:

    <root>/dataset.json            {"num_classes": 10, "classes": [...], "normalization": {...}}
    <root>/<split>/<any>.npz       arrays: ids (str), inputs (uint8 [N,C,H,W] or [N,H,W]), labels (int)
    <root>/<split>/<any>.safetensors  tensors inputs, labels; metadata "ids": JSON list of str

Shards are read one at a time in name order (`iter_shards`), so a pass over the data never
holds more than one shard; `load_shards` concatenates them.

A *published* data set (`publish_dataset`, `lethe data publish`) is the same layout written through
lethe.storage: every file has a sha256 sidecar, `lethe-manifest.json` (written last) lists each file
and its sha256, and `dataset.json` is the data set's card (format `lethe-dataset/1`: classes, image
size, channels, normalisation, and per split its size and fingerprint). Reading one checks every
shard against its sidecar and the manifest, and each split against the card's fingerprint, so a
changed shard is refused rather than trained or unlearned on. Sample ids are the source's own
(`fashion-mnist/train/17`), so the ids a ledger holds stay valid, and so does the fingerprint: a
model trained on `fashion-mnist` accepts its published copy.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lethe.data.sampleset import Normalization, SampleSet, concat
from lethe.errors import DataError, IntegrityError, StorageError
from lethe.storage import (
    MANIFEST,
    ArtifactNotFoundError,
    exists,
    get_bytes,
    get_unverified_bytes,
    join_uri,
    list_uris,
    put_dir,
)

SUFFIXES = (".npz", ".safetensors")
META_FILE = "dataset.json"
DATASET_FORMAT = "lethe-dataset/1"
#: Samples per published shard: 10,000 Fashion-MNIST images are 7.8 MB, one S3 request each.
DEFAULT_SHARD_SIZE = 10_000


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


def _read_manifest(root: str) -> dict[str, str] | None:
    """The manifest of a published data set (relative path -> sha256), verified; None when the root
    holds plain, unpublished shards."""
    uri = join_uri(root, MANIFEST)
    try:
        if not exists(uri):
            return None
        files = json.loads(get_bytes(uri))["files"]
    except StorageError as exc:  # IntegrityError included: a changed manifest is refused
        raise DataError(f"cannot read the published data set at {root}: {exc}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"malformed {uri}: {exc}") from exc
    if not isinstance(files, dict):
        raise DataError(f"malformed {uri}: 'files' is not a mapping")
    return {str(k): str(v) for k, v in files.items()}


def _read_verified(root: str, relative: str, manifest: dict[str, str]) -> bytes:
    """A published file, checked against its sidecar and the manifest (a file and sidecar replaced
    together still differ from the manifest)."""
    uri = join_uri(root, relative)
    try:
        raw = get_bytes(uri)
    except ArtifactNotFoundError as exc:
        raise DataError(f"the published data set at {root} lacks {relative}, which its manifest lists") \
            from exc
    except StorageError as exc:
        raise (exc if isinstance(exc, IntegrityError) else DataError(f"cannot read {uri}: {exc}")) from exc
    if hashlib.sha256(raw).hexdigest() != manifest[relative]:
        raise IntegrityError(f"{uri} differs from the sha256 the manifest of {root} records: refusing it")
    return raw


def read_meta(root: str) -> dict[str, Any]:
    manifest = _read_manifest(root)
    if manifest is not None:
        if META_FILE not in manifest:
            raise DataError(f"the published data set at {root} has no {META_FILE} in its manifest")
        raw: bytes | None = _read_verified(root, META_FILE, manifest)
    else:
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


def read_shard(uri: str, *, name: str, split: str, meta: dict[str, Any],
               raw: bytes | None = None) -> SampleSet:
    """One shard as a SampleSet; `raw`: its bytes when the caller has read (and verified) them."""
    raw = raw if raw is not None else _read_bytes(uri)
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
    """One SampleSet per shard, read lazily in name order (a published set's: those its manifest
    lists, each verified)."""
    manifest = _read_manifest(root)
    meta = read_meta(root)
    name = f"shards:{root}"
    if manifest is None:
        for uri in _shard_uris(root, split):
            yield read_shard(uri, name=name, split=split, meta=meta)
        return
    listed = sorted(k for k in manifest if k.startswith(f"{split}/") and k.endswith(SUFFIXES))
    if not listed:
        raise DataError(f"the published data set at {root} has no {split} shards")
    for relative in listed:
        yield read_shard(join_uri(root, relative), name=name, split=split, meta=meta,
                         raw=_read_verified(root, relative, manifest))


def load_shards(root: str, split: str) -> SampleSet:
    """One split; a published set's is checked against the fingerprint its card records."""
    samples = concat(list(iter_shards(root, split)))
    recorded = (read_meta(root).get("splits") or {}).get(split, {}).get("fingerprint")
    if recorded is not None and samples.fingerprint() != recorded:
        raise IntegrityError(f"the {split} split at {root} does not match the fingerprint its {META_FILE} "
                             f"records ({recorded[:12]}...): refusing it")
    return samples


def dataset_card(train: SampleSet, test: SampleSet, *, source: str) -> dict[str, Any]:
    """The card of a published data set: what a model must match, and where the data came from."""
    return {
        "format": DATASET_FORMAT,
        "source": source,
        "num_classes": train.num_classes,
        "classes": list(train.classes) if train.classes else None,
        "in_channels": train.in_channels,
        "image_size": list(train.image_size),
        "normalization": train.normalization.to_dict(),
        "splits": {s.split: {"size": len(s), "fingerprint": s.fingerprint()} for s in (train, test)},
    }


def publish_dataset(train: SampleSet, test: SampleSet, uri: str, *, source: str,
                    shard_size: int = DEFAULT_SHARD_SIZE, fmt: str = "npz") -> dict[str, Any]:
    """Write both splits under `uri` through lethe.storage: shards, sidecars, card, manifest (last).

    Refuses a `uri` that already holds a published data set with other data (models trained on it
    would lose their data); publishing the same data again rewrites it. Returns the card."""
    import tempfile

    if shard_size < 1:
        raise DataError(f"the shard size must be at least 1, not {shard_size}")
    card = dataset_card(train, test, source=source)
    if _read_manifest(uri) is not None:
        previous = (read_meta(uri).get("splits") or {})
        if previous and previous != card["splits"]:
            raise DataError(f"{uri} already holds a published data set with other data (fingerprints "
                            "differ): publish to a new location instead")
    with tempfile.TemporaryDirectory(prefix="lethe-publish-") as tmp:
        for samples in (train, test):
            write_shards(samples, tmp, shard_size=shard_size, fmt=fmt)
        (Path(tmp) / META_FILE).write_text(json.dumps(card, indent=2) + "\n")
        try:
            put_dir(tmp, uri)
        except StorageError as exc:
            raise DataError(f"cannot publish to {uri}: {exc}") from exc
    return card


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
