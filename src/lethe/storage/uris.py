"""Parsing storage URIs: a local path (or `file://` URI), `s3://bucket/key`, or `<scheme>://...`."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

from lethe.errors import StorageError

SIDECAR_SUFFIX = ".sha256"
SCHEME = re.compile(r"[a-z][a-z0-9+.-]*", re.IGNORECASE)  # RFC 3986


def uri_scheme(uri: str | Path) -> str:
    """`s3://b/k` -> "s3", `file:///x` -> "file"; a plain path -> ""."""
    scheme, separator, _ = str(uri).partition("://")
    return scheme.lower() if separator and SCHEME.fullmatch(scheme) else ""


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
    if uri_scheme(text):
        raise StorageError(f"unsupported artifact URI {text!r}: not a local path")
    return Path(text)


def sidecar_uri(uri: str) -> str:
    return f"{uri}{SIDECAR_SUFFIX}"
