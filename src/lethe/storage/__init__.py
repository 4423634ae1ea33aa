"""Artifacts by URI (a local path, `file://`, `s3://bucket/key`, or any registered scheme), with
sha256 sidecars checked on every read.

One backend per URI scheme (`lethe.storage.backends`) moves the bytes; this package imports
nothing of the engine, the data or the models, so every layer can use it.
"""

from lethe.storage.artifacts import (
    MANIFEST,
    delete,
    exists,
    get_bytes,
    get_dir,
    get_file,
    get_unverified_bytes,
    list_uris,
    put_bytes,
    put_dir,
    put_file,
    recorded_sha256,
    seal_local_file,
    sha256_file,
    verify_local_file,
)
from lethe.storage.backends import Backend, absolute_uri, backend_for, join_uri, register_backend
from lethe.storage.backends.base import ArtifactNotFoundError
from lethe.storage.backends.s3_client import endpoint_url
from lethe.storage.uris import is_s3, split_s3, uri_scheme

__all__ = [
    "MANIFEST",
    "ArtifactNotFoundError",
    "Backend",
    "absolute_uri",
    "backend_for",
    "delete",
    "endpoint_url",
    "exists",
    "get_bytes",
    "get_dir",
    "get_file",
    "get_unverified_bytes",
    "is_s3",
    "join_uri",
    "list_uris",
    "put_bytes",
    "put_dir",
    "put_file",
    "recorded_sha256",
    "register_backend",
    "seal_local_file",
    "sha256_file",
    "split_s3",
    "uri_scheme",
    "verify_local_file",
]
