"""The boto3 S3 client lethe uses (one per environment), and the translation of its errors into StorageError.

botocore itself honours `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` (MinIO, SeaweedFS, moto) and
the standard credential chain (`AWS_ACCESS_KEY_ID`, profiles, IRSA). lethe adds short connect
timeouts and few retries so that an unreachable store fails in seconds, not minutes.
boto3 is imported at the first S3 operation, not with `lethe.storage` (about a second of imports
that a local store never needs).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from lethe.config import s3_settings
from lethe.errors import StorageError
from lethe.storage.backends.base import ArtifactNotFoundError

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig

MIB = 1024 * 1024
_ENV_KEYS = (
    "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION",
    "LETHE_S3_CONNECT_TIMEOUT", "LETHE_S3_MAX_ATTEMPTS",
)
_clients: dict[tuple[str | None, ...], Any] = {}
_lock = threading.Lock()


def endpoint_url() -> str | None:
    """The custom S3 endpoint, if any (the same lookup botocore does)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def client() -> Any:
    """A cached S3 client for the current environment (clients are thread-safe, sessions are not)."""
    key = tuple(os.environ.get(name) for name in _ENV_KEYS)
    import boto3
    from botocore.config import Config

    with _lock:
        if key not in _clients:
            limits = s3_settings()
            config = Config(
                connect_timeout=limits.connect_timeout,
                read_timeout=60,
                retries={"max_attempts": limits.max_attempts, "mode": "standard"},
                # Self-hosted stores (MinIO, SeaweedFS, moto) are addressed by path, not by DNS name.
                s3={"addressing_style": "path" if endpoint_url() else "auto"},
            )
            _clients[key] = boto3.session.Session().client("s3", config=config)
        return _clients[key]


def reset_clients() -> None:
    """Forget the cached clients (after credentials rotate, or between tests that mock S3)."""
    with _lock:
        _clients.clear()


def transfer_config() -> TransferConfig:
    """Multipart above `LETHE_S3_MULTIPART_MB` (default 16 MiB), in parts of that size."""
    from boto3.s3.transfer import TransferConfig

    part = max(5, s3_settings().multipart_mb) * MIB  # S3's minimum part is 5 MiB
    return TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=4)


@contextmanager
def s3_errors(uri: str) -> Iterator[None]:
    """Turn boto3/botocore failures into one-line StorageErrors that say what to check."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    where = endpoint_url() or "AWS S3"
    try:
        yield
    except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError) as exc:
        raise StorageError(f"cannot reach the S3 endpoint {where} for {uri}: {exc}") from exc
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise StorageError(f"no S3 credentials for {uri}: set AWS_ACCESS_KEY_ID and "
                           "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)") from exc
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in ("404", "NoSuchKey", "NotFound"):
            raise ArtifactNotFoundError(f"no artifact at {uri}") from exc
        if code == "NoSuchBucket":
            raise StorageError(f"the bucket of {uri} does not exist at {where}") from exc
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise StorageError(f"access to {uri} denied by {where} ({code})") from exc
        raise StorageError(f"S3 refused {uri}: {code} {error.get('Message', '')}".strip()) from exc
    except (BotoCoreError, Boto3Error) as exc:
        # boto3's transfer errors wrap the ClientError text; keep it on one line.
        raise StorageError(f"S3 transfer of {uri} failed at {where}: {exc}") from exc
