"""The MLflow client lethe uses: one per tracking URI and process, errors as RegistryError.

lethe never touches MLflow's global state (`mlflow.set_tracking_uri`, active runs): its default
tracking URI is `sqlite:///mlflow.db` in the working directory, not lethe's.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import SQLAlchemyError

from lethe.config import environment, settings
from lethe.errors import RegistryError
from lethe.redact import check_url, mask_credentials
from lethe.storage import absolute_uri, join_uri

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
        raise RegistryError(mask_credentials(f"cannot reach the MLflow server at {tracking_uri}: {reason}")
                            ) from exc


def get_client(tracking_uri: str | None = None) -> MlflowClient:
    """A cached client (MLflow's SQLite store migrates its schema on first use: once per process)."""
    uri = check_url(tracking_uri or settings().tracking, "the MLflow tracking URI")
    with _lock:
        if uri not in _clients:
            if is_remote(uri):
                _probe(uri)
            # MLflow logs its schema migrations at INFO on stderr: noise around lethe's one-line output.
            logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
            with mlflow_errors(uri):
                if uri.startswith("sqlite:///"):
                    Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
                _clients[uri] = MlflowClient(tracking_uri=uri, registry_uri=uri)
        return _clients[uri]


def default_artifact_location(tracking_uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: the server's choice, else lethe's artifact root.

    MLflow would otherwise use `./mlruns` in whatever directory lethe happens to run in.
    """
    if is_remote(tracking_uri):
        return None
    return absolute_uri(join_uri(settings().artifacts, "mlflow"))


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
    except (MlflowException, SQLAlchemyError, OSError) as exc:  # its SQL store fails in SQLAlchemy's terms
        if isinstance(exc, OSError) and exc.strerror:
            text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
        else:
            text = str(exc.message if hasattr(exc, "message") else exc)
        message = (text.strip().splitlines() or ["(no message)"])[0]
        raise RegistryError(mask_credentials(f"MLflow at {tracking_uri}: {message[:300]}")) from exc


def mlflow_environ(**values: str) -> AbstractContextManager[None]:
    """MLflow settings that it reads from the environment only, for the duration of a call."""
    return environment(values)


@contextmanager
def quiet_mlflow() -> Iterator[None]:
    """No MLflow progress bars, INFO logs or warnings about what lethe settles explicitly (a model's
    signature and requirements, file by file downloads): noise around lethe's one-line output."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with mlflow_environ(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        logger.setLevel(level)
