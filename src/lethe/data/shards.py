"""Sharded tensor files under any storage URI (a local path, `s3://`, ...): data at rest in an object store.

Layout under a root URI:

    <root>/dataset.json            the card (`lethe.data.dataset_record.DatasetRecord`)
    <root>/<split>/<any>.npz | .safetensors   shards (`lethe.data.shard_files`)

Shards are read one at a time in name order (`iter_shards`), so a pass over the data never
holds more than one shard; `load_shards` concatenates them.

A *published* data set (`publish_dataset`, `lethe data publish`) is the same layout written through
lethe.storage: every file has a sha256 sidecar, `lethe-manifest.json` (written last) lists each file
and its sha256, and `dataset.json` is the data set's card (classes, image size, channels,
normalisation, metadata columns, and per split its size and fingerprint). Reading one checks every
shard against its sidecar and the manifest, and each split against the card's fingerprint, so a
changed shard is refused rather than trained or unlearned on. Sample ids are the source's own
(`fashion-mnist/train/17`), so the ids a ledger holds stay valid, and so does the fingerprint: a
model trained on `fashion-mnist` accepts its published copy. Metadata columns travel with the
samples (they are in the shards, so the sidecars and the manifest cover them too).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator

from lethe.data.catalog import LoadOptions
from lethe.data.dataset_record import CARD_FILE, DatasetRecord
from lethe.data.sampleset import SampleSet, concat
from lethe.data.shard_files import SUFFIXES, read_shard, write_shards
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

__all__ = ["DEFAULT_SHARD_SIZE", "iter_shards", "load", "load_shards", "publish_dataset", "read_dataset_card",
           "write_shards"]

#: Samples per published shard: 10,000 Fashion-MNIST images are 7.8 MB, one S3 request each.
DEFAULT_SHARD_SIZE = 10_000


def _read_bytes(uri: str) -> bytes | None:
    """The raw bytes, or None when there is no object. Plain (unpublished) shards have no sha256
    sidecars, so these reads are unverified."""
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


def _card(root: str, manifest: dict[str, str] | None) -> DatasetRecord:
    where = join_uri(root, CARD_FILE)
    if manifest is not None:
        if CARD_FILE not in manifest:
            raise DataError(f"the published data set at {root} has no {CARD_FILE} in its manifest")
        return DatasetRecord.from_bytes(_read_verified(root, CARD_FILE, manifest), where=where)
    raw = _read_bytes(where)
    if raw is None:
        if not _list(root):
            raise DataError(f"no {CARD_FILE} in {root}: the shard root does not exist or is empty")
        raise DataError(f"no {CARD_FILE} in {root} (it states num_classes, classes, normalization)")
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise DataError(f"malformed {where}: {exc}") from exc
    return DatasetRecord.from_plain(parsed, where=where)


def read_dataset_card(root: str) -> DatasetRecord:
    """The card of a shard root (a published one's checked against its sidecar and manifest)."""
    return _card(root, _read_manifest(root))


def _iter(root: str, split: str, manifest: dict[str, str] | None, card: DatasetRecord) -> Iterator[SampleSet]:
    name = f"shards:{root}"
    if manifest is None:
        folder = join_uri(root, split)
        shards = [u for u in _list(folder) if u.endswith(SUFFIXES)]
        if not shards:
            raise DataError(f"no shards ({', '.join(SUFFIXES)}) under {folder}")
        for uri in shards:
            raw = _read_bytes(uri)
            if raw is None:
                raise DataError(f"shard {uri} disappeared while reading")
            yield read_shard(uri, raw, name=name, split=split, card=card)
        return
    listed = sorted(k for k in manifest if k.startswith(f"{split}/") and k.endswith(SUFFIXES))
    if not listed:
        raise DataError(f"the published data set at {root} has no {split} shards")
    for relative in listed:
        yield read_shard(join_uri(root, relative), _read_verified(root, relative, manifest), name=name,
                         split=split, card=card)


def iter_shards(root: str, split: str) -> Iterator[SampleSet]:
    """One SampleSet per shard, read lazily in name order (a published set's: those its manifest
    lists, each verified)."""
    manifest = _read_manifest(root)
    yield from _iter(root, split, manifest, _card(root, manifest))


def load_shards(root: str, split: str) -> SampleSet:
    """One split; a published set's is checked against the fingerprint and the metadata columns its
    card records."""
    manifest = _read_manifest(root)
    card = _card(root, manifest)
    samples = concat(list(_iter(root, split, manifest, card)))
    recorded = card.recorded_fingerprint(split)
    if recorded is not None and samples.fingerprint() != recorded:
        raise IntegrityError(f"the {split} split at {root} does not match the fingerprint its {CARD_FILE} "
                             f"records ({recorded[:12]}...): refusing it")
    if card.metadata and sorted(samples.metadata) != sorted(card.metadata):
        raise DataError(f"the {split} split at {root} carries metadata columns "
                        f"{', '.join(samples.metadata) or 'none'}; its {CARD_FILE} lists "
                        f"{', '.join(card.metadata)}")
    return samples


def load(split: str, options: LoadOptions) -> SampleSet:
    """The `shards:URI` row's loader."""
    return load_shards(options.argument, split)


def publish_dataset(train: SampleSet, test: SampleSet, uri: str, *, source: str,
                    shard_size: int = DEFAULT_SHARD_SIZE, fmt: str = "npz") -> DatasetRecord:
    """Write both splits under `uri` through lethe.storage: shards, sidecars, card, manifest (last).

    Refuses a `uri` that already holds a published data set with other data (models trained on it
    would lose their data); publishing the same data again rewrites it. Returns the card."""
    if shard_size < 1:
        raise DataError(f"the shard size must be at least 1, not {shard_size}")
    if train.metadata.keys() != test.metadata.keys():
        raise DataError(f"the train and test splits of {train.name} carry different metadata columns "
                        f"({', '.join(train.metadata) or 'none'} vs {', '.join(test.metadata) or 'none'})")
    card = DatasetRecord.of(train, source=source, splits=(train, test))
    if _read_manifest(uri) is not None:
        previous = read_dataset_card(uri).splits
        if previous and previous != card.splits:
            raise DataError(f"{uri} already holds a published data set with other data (fingerprints "
                            "differ): publish to a new location instead")
    with tempfile.TemporaryDirectory(prefix="lethe-publish-") as tmp:
        for samples in (train, test):
            write_shards(samples, tmp, shard_size=shard_size, fmt=fmt)
        card.write(f"{tmp}/{CARD_FILE}")
        try:
            put_dir(tmp, uri)
        except StorageError as exc:
            raise DataError(f"cannot publish to {uri}: {exc}") from exc
    return card
