"""A cache of full-data importances, so the D pass runs once per model version.

Key: (model fingerprint, dataset fingerprint, method, batch size); importances of one model
are meaningless for another, and their values depend on the batch size. It lives with the steps,
not in lethe.storage, because it knows the engine's `Importances`; the bytes go through lethe.storage.

An entry without its sha256 sidecar is a write that never finished (the process died, or the disk
filled, between the data and its sidecar): it is never trusted; `get` deletes it and reports a
miss, so the importances are computed again and stored whole. An entry whose sha256 differs from
its sidecar was altered after it was written: that is refused (IntegrityError), not repaired.
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

from lethe.errors import ImportancesError, StorageError
from lethe.storage import delete, exists, get_file, join_uri, put_file, recorded_sha256
from lethe.storage.uris import sidecar_uri
from lethe.unlearning import METHODS, Importances

log = logging.getLogger(__name__)
_TOKEN = re.compile(r"^[0-9A-Za-z_.-]{1,128}$")


def _token(value: str, what: str) -> str:
    if not _TOKEN.match(str(value)):
        raise StorageError(f"invalid {what} {value!r} for an importances cache key")
    return str(value)


class ImportancesCache:
    """Importances stored under `<root>/importances/<model fp>/<dataset fp>-<method>-b<batch>.safetensors`."""

    def __init__(self, root_uri: str | Path) -> None:
        self.root_uri = str(root_uri)

    def uri_for(self, *, model_fingerprint: str, dataset_fingerprint: str, method: str,
                batch_size: int) -> str:
        if method not in METHODS:
            raise ImportancesError(f"unknown importance method {method!r}; expected one of {METHODS}")
        if int(batch_size) < 1:
            raise ImportancesError(f"batch size must be positive, not {batch_size}")
        name = f"{_token(dataset_fingerprint, 'dataset fingerprint')}-{method}-b{int(batch_size)}.safetensors"
        return join_uri(self.root_uri, "importances", _token(model_fingerprint, "model fingerprint"), name)

    def get(self, *, model_fingerprint: str, dataset_fingerprint: str, method: str,
            batch_size: int) -> Importances | None:
        """The cached importances, verified (sha256, then metadata), or None when not cached."""
        uri = self.uri_for(model_fingerprint=model_fingerprint, dataset_fingerprint=dataset_fingerprint,
                           method=method, batch_size=batch_size)
        if not exists(uri):
            return None
        if not exists(sidecar_uri(uri)):
            log.warning("the importances cached at %s have no sha256 sidecar (an unfinished write): "
                        "discarding them; they are computed again", uri)
            delete(uri)
            return None
        with tempfile.TemporaryDirectory(prefix="lethe-importances-") as tmp:
            importances = Importances.load(get_file(uri, Path(tmp) / "importances.safetensors"))
        wanted = {"model_fingerprint": model_fingerprint, "method": method, "batch_size": int(batch_size)}
        found = {key: getattr(importances, key) for key in wanted}
        if found != wanted:
            raise ImportancesError(f"the importances cached at {uri} belong to {found}, not {wanted}")
        return importances

    def put(self, importances: Importances, *, dataset_fingerprint: str) -> str:
        """Store `importances` (of the whole data set `dataset_fingerprint`); returns its URI."""
        uri = self.uri_for(model_fingerprint=importances.model_fingerprint,
                           dataset_fingerprint=dataset_fingerprint, method=importances.method,
                           batch_size=importances.batch_size)
        with tempfile.TemporaryDirectory(prefix="lethe-importances-") as tmp:
            put_file(importances.save(Path(tmp) / "importances.safetensors"), uri)
        return uri

    @staticmethod
    def sha256(uri: str) -> str:
        """The recorded sha256 of a cached entry (for the model version's lineage tags)."""
        return recorded_sha256(uri)
