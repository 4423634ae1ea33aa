"""The S3 backend (AWS S3, MinIO, SeaweedFS, moto) over lethe's one S3 client.

The client (timeouts, retries, endpoint) and the error translation are `s3_client`'s (beside this
module); this class only maps the backend interface onto them.
"""

from __future__ import annotations

from pathlib import Path

from lethe.storage.backends import s3_client as s3
from lethe.storage.backends.base import ArtifactNotFoundError, Backend
from lethe.storage.uris import split_s3


class S3Backend(Backend):
    """Objects are S3 objects; a single PUT (or a completed multipart upload) is atomic."""

    def read_bytes(self, uri: str) -> bytes:
        bucket, key = split_s3(uri)
        with s3.s3_errors(uri):
            return s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def write_bytes(self, uri: str, data: bytes) -> None:
        bucket, key = split_s3(uri)
        with s3.s3_errors(uri):
            s3.client().put_object(Bucket=bucket, Key=key, Body=data)

    def upload_file(self, src: Path, uri: str) -> None:
        bucket, key = split_s3(uri)
        with s3.s3_errors(uri):
            s3.client().upload_file(str(src), bucket, key, Config=s3.transfer_config())

    def download_file(self, uri: str, dest: Path) -> None:
        bucket, key = split_s3(uri)
        with s3.s3_errors(uri):
            s3.client().download_file(bucket, key, str(dest), Config=s3.transfer_config())

    def exists(self, uri: str) -> bool:
        bucket, key = split_s3(uri)
        try:
            with s3.s3_errors(uri):
                s3.client().head_object(Bucket=bucket, Key=key)
        except ArtifactNotFoundError:
            return False
        return True

    def list(self, prefix: str) -> list[str]:
        bucket, key = split_s3(prefix)
        folder = f"{key.strip('/')}/" if key.strip("/") else ""  # "a/b" must not match "a/bc/..."
        keys: list[str] = []
        with s3.s3_errors(prefix):
            pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder)
            for page in pages:
                keys.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(f"s3://{bucket}/{k}" for k in keys)

    def join(self, base: str, *parts: str) -> str:
        split_s3(base)  # refuse "s3://" without a bucket here, not at the first transfer
        return super().join(base, *parts)

    def delete(self, uri: str) -> None:
        bucket, key = split_s3(uri)
        with s3.s3_errors(uri):
            s3.client().delete_object(Bucket=bucket, Key=key)
