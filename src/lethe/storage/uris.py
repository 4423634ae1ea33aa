"""Artifact locations: a local path (or `file://` URI) or `s3://bucket/key`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from lethe.errors import StorageError

SIDECAR_SUFFIX = ".sha256"


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b` -> ("bucket", "a/b"); the key may be empty (the bucket's root)."""
    parsed = urlparse(str(uri))
    if parsed.scheme != "s3" or not parsed.netloc:
        raise StorageError(f"not an S3 URI: {uri!r} (expected s3://bucket/key)")
    return parsed.netloc, parsed.path.lstrip("/")


def local_path(uri: str | Path) -> Path:
    """The filesystem path of a local URI (plain path or file://)."""
    text = str(uri)
    if text.startswith("file://"):
        return Path(urlparse(text).path)
    if "://" in text:
        raise StorageError(f"unsupported artifact URI {text!r}: use a local path or s3://bucket/key")
    return Path(text)


def join_uri(base: str | Path, *parts: str) -> str:
    """Append path parts to a URI, keeping its scheme; `join_uri("s3://b/x", "y")` -> "s3://b/x/y"."""
    text = str(base)
    if is_s3(text):
        bucket, key = split_s3(text)
        key = "/".join(p.strip("/") for p in (key, *parts) if p.strip("/"))
        return f"s3://{bucket}/{key}"
    return str(local_path(text).joinpath(*parts))


def sidecar_uri(uri: str) -> str:
    return f"{uri}{SIDECAR_SUFFIX}"
