"""Artifacts by URI (local paths or s3://bucket/key) with sha256 checks, and the importances cache.

`ImportancesCache` is imported on first use: it needs torch, which the ledger and the CLI do not.
"""

from typing import Any

from lethe.storage.artifacts import (
    MANIFEST,
    exists,
    get_bytes,
    get_dir,
    get_file,
    put_bytes,
    put_dir,
    put_file,
    recorded_sha256,
    sha256_file,
)
from lethe.storage.s3 import ArtifactNotFoundError, endpoint_url
from lethe.storage.uris import is_s3, join_uri, split_s3

__all__ = [
    "MANIFEST",
    "ArtifactNotFoundError",
    "ImportancesCache",
    "endpoint_url",
    "exists",
    "get_bytes",
    "get_dir",
    "get_file",
    "is_s3",
    "join_uri",
    "put_bytes",
    "put_dir",
    "put_file",
    "recorded_sha256",
    "sha256_file",
    "split_s3",
]


def __getattr__(name: str) -> Any:
    if name == "ImportancesCache":
        from lethe.storage.cache import ImportancesCache

        return ImportancesCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
