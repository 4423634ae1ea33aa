"""Full-data importances of a model version: cached, or computed in shards and merged exactly.

The D pass (one epoch of forward+backward over the training set) does not depend on any request,
so it runs once per (model fingerprint, data set fingerprint, method, batch size) and lands in the
`ImportancesCache`; every later request for that model only pays for its forget set.

Output: a directory with `importances.safetensors` and `importances.json` (cache key, URI, sha256).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from lethe.config import settings
from lethe.data import SampleSet
from lethe.devices import default_device
from lethe.errors import ImportancesError, IntegrityError, PipelineError
from lethe.models import is_model_dir, load_model, read_card
from lethe.steps.cache import ImportancesCache
from lethe.steps.importance_pass import DEFAULT_IMPORTANCE_BATCH_SIZE, importances_of
from lethe.steps.layout import IMPORTANCES_FILE, importances_file
from lethe.steps.layout import IMPORTANCES_INFO_FILE as INFO_FILE
from lethe.steps.results import ImportancesKey, ImportancesResult, ImportancesShard
from lethe.steps.training_data import training_data
from lethe.storage import seal_local_file, verify_local_file
from lethe.unlearning import DEFAULT_METHOD, Importances, get_method

DEFAULT_BATCH_SIZE = DEFAULT_IMPORTANCE_BATCH_SIZE  # 1: per sample (see importance_pass)
MAX_SHARDS = 256


def _check_args(method: str, batch_size: int) -> None:
    get_method(method)  # an unknown name is refused here, before any data is loaded
    if int(batch_size) < 1:
        raise ImportancesError(f"batch size must be positive, not {batch_size}")


def _training_set(model_path: str | Path, dataset: str | None, data_dir: str | None) -> SampleSet:
    """The model's train split (given, LETHE_DATASET_URI or its card's), refused unless it is the
    data the model was trained on."""
    return training_data(read_card(model_path), dataset, data_dir=data_dir)


def _cache_entry(model_path: str | Path, dataset: str | None, data_dir: str | None, method: str,
                 batch_size: int, cache_root: str | None) -> tuple[Any, SampleSet, ImportancesCache, dict]:
    """The model card (its weights are verified when loaded), the training set, the cache and
    the cache key of the full-data importances."""
    card = read_card(model_path)
    train = _training_set(model_path, dataset, data_dir)
    cache = ImportancesCache(cache_root or settings().artifacts)
    key = {"model_fingerprint": card.fingerprint, "dataset_fingerprint": train.fingerprint(),
           "method": method, "batch_size": int(batch_size)}
    return card, train, cache, key


def verified_importances(path: str | Path) -> Path:
    """A local importances file, checked against its sha256 sidecar like an s3:// one.

    Every step that writes importances writes the sidecar too; a file without one is refused (its
    origin is unknown): check it, then `sha256sum FILE > FILE.sha256` vouches for it."""
    path = Path(path)
    try:
        verify_local_file(path)
    except IntegrityError as exc:
        if (path.parent / f"{path.name}.sha256").is_file():
            raise
        raise IntegrityError(f"{exc} (lethe writes FILE.sha256 beside every importances file it makes; for "
                             "one made elsewhere, check it, then `sha256sum FILE > FILE.sha256`)") from exc
    return path


def _write(importances: Importances, out_path: str | Path | None, info: ImportancesKey) -> None:
    if out_path is None:
        return
    out = Path(out_path)
    out.mkdir(parents=True, exist_ok=True)
    seal_local_file(importances.save(out / IMPORTANCES_FILE))  # readers verify it (lethe.steps.unlearn)
    (out / INFO_FILE).write_text(json.dumps(info.to_dict(), indent=2, sort_keys=True) + "\n")


def compute_importances(
    model_path: str | Path,
    dataset: str | None = None,
    *,
    out_path: str | Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    method: str = DEFAULT_METHOD,
    cache_root: str | None = None,
    use_cache: bool = True,
    device: str | None = None,
    progress: bool = True,
    data_dir: str | None = None,
) -> ImportancesResult:
    """Importances of the whole training set for the model at `model_path`, from the cache when
    there; computed and stored otherwise. Returns what was done (`cached`, `uri`, `seconds`, ...)."""
    _check_args(method, batch_size)
    started = time.perf_counter()
    card, train, cache, key = _cache_entry(model_path, dataset, data_dir, method, batch_size, cache_root)
    importances = cache.get(**key) if use_cache else None
    cached = importances is not None
    if importances is None:
        model, _ = load_model(model_path)
        importances = importances_of(model, train, batch_size=batch_size, method=method,
                                 device=device or default_device(), progress=progress)
    uri = cache.uri_for(**key)
    if not cached:
        cache.put(importances, dataset_fingerprint=key["dataset_fingerprint"])
    result = ImportancesResult(**key, cached=cached, uri=uri, sha256=ImportancesCache.sha256(uri),
                               dataset=train.name, num_samples=importances.num_samples,
                               num_batches=importances.num_batches,
                               seconds=round(time.perf_counter() - started, 3))
    _write(importances, out_path, result)
    return result


def plan_shards(num_shards: int) -> list[int]:
    if not 1 <= int(num_shards) <= MAX_SHARDS:
        raise PipelineError(f"the number of shards must be between 1 and {MAX_SHARDS}, not {num_shards}")
    return list(range(int(num_shards)))


def shard_range(num_samples: int, batch_size: int, shard_index: int, num_shards: int) -> tuple[int, int]:
    """Samples [start, stop) of shard k of K, cut on batch boundaries so the merge is exact."""
    num_batches = -(-num_samples // batch_size)
    if not 0 <= shard_index < num_shards:
        raise PipelineError(f"shard index {shard_index} outside 0..{num_shards - 1}")
    if num_shards > num_batches:
        raise PipelineError(f"{num_shards} shards for {num_batches} batches: use at most {num_batches}")
    first = shard_index * num_batches // num_shards
    last = (shard_index + 1) * num_batches // num_shards
    return first * batch_size, min(last * batch_size, num_samples)


def compute_importances_shard(
    model_path: str | Path,
    dataset: str | None = None,
    *,
    out_path: str | Path,
    shard_index: int,
    num_shards: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    method: str = DEFAULT_METHOD,
    cache_root: str | None = None,
    device: str | None = None,
    progress: bool = True,
    data_dir: str | None = None,
) -> ImportancesShard:
    """Importances over shard k of K of the training set; nothing to do when the whole set is cached."""
    _check_args(method, batch_size)
    started = time.perf_counter()
    card, train, cache, key = _cache_entry(model_path, dataset, data_dir, method, batch_size, cache_root)
    start, stop = shard_range(len(train), int(batch_size), int(shard_index), int(num_shards))
    shard_of = {**key, "shard_index": int(shard_index), "num_shards": int(num_shards), "start": start,
                "stop": stop}
    if cache.get(**key) is not None:
        result = ImportancesShard(**shard_of, cached=True, seconds=round(time.perf_counter() - started, 3))
        Path(out_path).mkdir(parents=True, exist_ok=True)
        (Path(out_path) / INFO_FILE).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        return result
    model, _ = load_model(model_path)
    shard = train.subset(torch.arange(start, stop))
    importances = importances_of(model, shard, batch_size=batch_size, method=method,
                                 device=device or default_device(), progress=progress)
    result = ImportancesShard(**shard_of, cached=False, seconds=round(time.perf_counter() - started, 3))
    _write(importances, out_path, result)
    return result


def merge_importances(
    model_path: str | Path,
    dataset: str | None,
    shard_paths: list[str | Path],
    *,
    out_path: str | Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    method: str = DEFAULT_METHOD,
    cache_root: str | None = None,
    data_dir: str | None = None,
) -> ImportancesResult:
    """Merge shard importances (exactly) into the cache; checks they cover the whole training set."""
    _check_args(method, batch_size)
    started = time.perf_counter()
    card, train, cache, key = _cache_entry(model_path, dataset, data_dir, method, batch_size, cache_root)
    importances = cache.get(**key)
    cached = importances is not None
    if importances is None:
        files = [importances_file(p) for p in shard_paths]
        missing = [str(f) for f in files if not f.is_file()]
        if missing or not files:
            raise ImportancesError(f"{len(missing)} of {len(files)} shard(s) have no importances to merge")
        importances = Importances.merge([Importances.load(verified_importances(f)) for f in files])
        if importances.model_fingerprint != card.fingerprint:
            raise ImportancesError("the shards were computed for another model than the one given")
        if importances.num_samples != len(train):
            raise ImportancesError(f"the shards cover {importances.num_samples} of {len(train)} samples: "
                                   "a shard is missing or repeated")
        cache.put(importances, dataset_fingerprint=key["dataset_fingerprint"])
    uri = cache.uri_for(**key)
    result = ImportancesResult(**key, cached=cached, uri=uri, sha256=ImportancesCache.sha256(uri),
                               dataset=train.name, num_samples=importances.num_samples,
                               num_batches=importances.num_batches, num_shards=len(shard_paths),
                               seconds=round(time.perf_counter() - started, 3))
    _write(importances, out_path, result)
    return result


def refresh_importances(
    model: str | Path,
    dataset: str | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    method: str = DEFAULT_METHOD,
    cache_root: str | None = None,
    device: str | None = None,
    progress: bool = True,
) -> ImportancesResult:
    """Make sure the cache holds the importances of `model` (a model directory or a registry
    reference such as `models:/NAME@champion`), e.g. right after it became champion."""
    if is_model_dir(model):
        return compute_importances(model, dataset, batch_size=batch_size, method=method,
                                   cache_root=cache_root, device=device, progress=progress)
    from lethe.registry.fetch import fetch_model  # here: MLflow takes seconds to import

    with tempfile.TemporaryDirectory(prefix="lethe-refresh-") as tmp:
        fetched = fetch_model(str(model), tmp)
        info = compute_importances(tmp, dataset, batch_size=batch_size, method=method, cache_root=cache_root,
                                   device=device, progress=progress)
        return dataclasses.replace(info, model_version=fetched.version)
