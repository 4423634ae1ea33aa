"""The S3 client under its former name: it lives with the S3 backend (`lethe.storage.backends.s3_client`),
so that `lethe.storage.backends` imports nothing of its parent package."""

from lethe.storage.backends.s3_client import (
    MIB,
    client,
    endpoint_url,
    reset_clients,
    s3_errors,
    transfer_config,
)

__all__ = ["MIB", "client", "endpoint_url", "reset_clients", "s3_errors", "transfer_config"]
