"""The two S3 reads the data loaders need, with boto3 and nothing else.

The endpoint and credentials come from the standard AWS variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
...), which boto3 reads itself. General artifact storage lives in lethe.storage; this stays minimal
so that lethe.data does not depend on it.
"""

from __future__ import annotations

from typing import Any

from lethe.errors import DataError


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` → ("bucket", "some/prefix")."""
    if not uri.startswith("s3://"):
        raise DataError(f"not an s3:// URI: {uri}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise DataError(f"no bucket in {uri}")
    return bucket, key


def _client() -> Any:
    import boto3

    return boto3.client("s3")


def list_objects(prefix_uri: str) -> list[str]:
    """The URIs of every object under `prefix_uri` (a "folder"), sorted."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = split_uri(prefix_uri.rstrip("/") + "/")
    keys: list[str] = []
    try:
        for page in _client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
    except (BotoCoreError, ClientError) as exc:
        raise DataError(f"cannot list {prefix_uri}: {exc}") from exc
    return sorted(f"s3://{bucket}/{key}" for key in keys)


def read_object(uri: str) -> bytes | None:
    """The bytes of one object, or None when it does not exist."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_uri(uri)
    try:
        return _client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise DataError(f"cannot read {uri}: {exc}") from exc
    except BotoCoreError as exc:
        raise DataError(f"cannot read {uri}: {exc}") from exc
