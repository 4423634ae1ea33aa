"""One storage backend per URI scheme, chosen by `backend_for(uri)`.

Plain paths and `file://` go to the local filesystem, `s3://` to S3. A new backend is one
`Backend` subclass plus one entry in `BACKENDS` (or a `register_backend` call at run time).
"""

from __future__ import annotations

from pathlib import Path

from lethe.errors import StorageError
from lethe.storage.backends.base import ArtifactNotFoundError, Backend
from lethe.storage.backends.local import LocalBackend
from lethe.storage.backends.s3 import S3Backend
from lethe.storage.uris import SCHEME, uri_scheme

# Scheme -> backend; "" is a plain local path. Backends hold no state (the S3 client is cached
# per environment by lethe.storage.s3), so one instance serves every URI of its scheme.
BACKENDS: dict[str, Backend] = {
    "": LocalBackend(),
    "file": LocalBackend(),
    "s3": S3Backend(),
}


def backend_for(uri: str) -> Backend:
    """The backend of `uri`'s scheme; an unknown scheme is a `StorageError`."""
    scheme = uri_scheme(uri)
    try:
        return BACKENDS[scheme]
    except KeyError:
        known = ", ".join(f"{s}://" for s in sorted(BACKENDS) if s)
        raise StorageError(f"unsupported storage URI {str(uri)!r}: no backend for {scheme}:// "
                           f"(use a local path or one of {known})") from None


def register_backend(scheme: str, backend: Backend) -> None:
    """Serve `scheme://` URIs with `backend` (replacing any earlier one)."""
    if not SCHEME.fullmatch(scheme or ""):
        raise StorageError(f"invalid URI scheme {scheme!r} for a storage backend")
    BACKENDS[scheme] = backend


def absolute_uri(uri: str | Path) -> str:
    """`uri` as other programs name it from any directory (a local path -> an absolute `file://` URI)."""
    return backend_for(str(uri)).absolute_uri(str(uri))


def join_uri(base: str | Path, *parts: str) -> str:
    """Append path parts to a URI, keeping its scheme; `join_uri("s3://b/x", "y")` -> "s3://b/x/y"."""
    return backend_for(str(base)).join(str(base), *parts)


__all__ = ["BACKENDS", "ArtifactNotFoundError", "Backend", "LocalBackend", "S3Backend", "absolute_uri",
           "backend_for", "join_uri", "register_backend"]
