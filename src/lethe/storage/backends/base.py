"""The interface every storage backend implements: raw bytes and files by URI, nothing else.

Hashing, sidecars and manifests live above it (lethe.storage.artifacts), so a backend only moves
bytes; adding one (GCS, Azure, an in-memory store for tests) is one subclass plus one entry in
`lethe.storage.backends.BACKENDS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from lethe.errors import StorageError


class ArtifactNotFoundError(StorageError):
    """No artifact (or no recorded sha256) at the given URI."""


class Backend(ABC):
    """Raw storage for one URI scheme. Every method raises `StorageError` (never a library error)."""

    @abstractmethod
    def read_bytes(self, uri: str) -> bytes:
        """The object's bytes; `ArtifactNotFoundError` when there is none."""

    @abstractmethod
    def write_bytes(self, uri: str, data: bytes) -> None:
        """Store `data` at `uri` atomically: a reader sees the old object or the new one, never a part."""

    @abstractmethod
    def upload_file(self, src: Path, uri: str) -> None:
        """Store the local file `src` at `uri`, atomically like `write_bytes`."""

    @abstractmethod
    def download_file(self, uri: str, dest: Path) -> None:
        """Copy the object to the local file `dest`; `ArtifactNotFoundError` when there is none."""

    @abstractmethod
    def exists(self, uri: str) -> bool:
        """Whether an object (not a folder) is stored at `uri`."""

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """The URIs of every object below the folder `prefix`, at any depth, sorted; [] when none."""

    @abstractmethod
    def delete(self, uri: str) -> None:
        """Remove the object at `uri`; nothing happens when there is none."""

    def absolute_uri(self, uri: str) -> str:
        """`uri` as another program (MLflow) names the same object from any directory: URIs of a
        scheme are absolute already; a local backend turns a relative path into a `file://` URI."""
        return uri

    def join(self, base: str, *parts: str) -> str:
        """Append path parts to `base` with single slashes: `join("s3://b/x/", "y", "/z")` -> "s3://b/x/y/z"."""
        scheme, _, rest = base.partition("://")
        path = "/".join(p.strip("/") for p in (rest, *parts) if p.strip("/"))
        return f"{scheme}://{path}"
