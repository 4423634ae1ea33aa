"""The MLflow client lethe uses: one per tracking URI and process, errors as RegistryError.

lethe never touches MLflow's global state (`mlflow.set_tracking_uri`, active runs): its default
tracking URI is `sqlite:///mlflow.db` in the working directory, not lethe's.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from lethe.config import settings
from lethe.errors import RegistryError
from lethe.storage import is_s3, join_uri

_clients: dict[str, MlflowClient] = {}
_lock = threading.Lock()


def is_remote(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def _probe(tracking_uri: str) -> None:
    # MLflow retries an unreachable server for minutes; one short probe fails in seconds instead.
    try:
        with urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=5):
            return
    except urllib.error.HTTPError:
        return  # it answers (maybe behind auth): let MLflow deal with the status
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RegistryError(f"cannot reach the MLflow server at {tracking_uri}: {reason}") from exc


def get_client(tracking_uri: str | None = None) -> MlflowClient:
    """A cached client (MLflow's SQLite store migrates its schema on first use: once per process)."""
    uri = tracking_uri or settings().tracking
    with _lock:
        if uri not in _clients:
            if is_remote(uri):
                _probe(uri)
            elif uri.startswith("sqlite:///"):
                Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            with mlflow_errors(uri):
                _clients[uri] = MlflowClient(tracking_uri=uri, registry_uri=uri)
        return _clients[uri]


def default_artifact_location(tracking_uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: the server's choice, else lethe's artifact root.

    MLflow would otherwise use `./mlruns` in whatever directory lethe happens to run in.
    """
    if is_remote(tracking_uri):
        return None
    root = settings().artifacts
    if is_s3(root):
        return join_uri(root, "mlflow")
    return (Path(root).resolve() / "mlflow").as_uri()


def ensure_experiment(client: MlflowClient, name: str, tracking_uri: str) -> str:
    with mlflow_errors(tracking_uri):
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return client.create_experiment(name, artifact_location=default_artifact_location(tracking_uri))
        except MlflowException:
            experiment = client.get_experiment_by_name(name)  # created concurrently by another run
            if experiment is None:
                raise
            return experiment.experiment_id


@contextmanager
def mlflow_errors(tracking_uri: str) -> Iterator[None]:
    try:
        yield
    except MlflowException as exc:
        message = str(exc.message if hasattr(exc, "message") else exc).strip().splitlines()[0]
        raise RegistryError(f"MLflow at {tracking_uri}: {message[:300]}") from exc
