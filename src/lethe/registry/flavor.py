"""lethe's MLflow flavour: what a registered version's `model/` artifact holds, saved, logged,
downloaded and loaded by one module (in the manner of MLflow's own flavours, e.g. `mlflow.onnx`).

`model/` holds lethe's model directory (model.safetensors + model.json and their sha256 sidecars,
loadable by `lethe.models.load_model` and unlearnable again) and, beside it, an MLflow pyfunc
(`lethe.registry.serving`: MLmodel at the root, TorchScript), so `models:/NAME@champion` serves
without lethe. MLmodel names the flavour (`flavors.lethe`: the card, the weights, their format).
The sha256 of each side is recorded on the version (`VersionMetadata.model_manifest`,
`.serving_manifest`); a download takes lethe's files only and checks them against it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import lethe
from lethe.errors import IntegrityError, RegistryError
from lethe.registry.client import quiet_mlflow
from lethe.registry.metadata import VersionMetadata
from lethe.registry.tags import (
    GATE_REASONS_TAG,
    GATE_TAG,
    METHOD_TAG,
    MODEL_FINGERPRINT_TAG,
    PARENT_VERSION_TAG,
    SCENARIO_TAG,
    VERSION_OF_TAG,
)
from lethe.storage import sha256_file
from lethe.storage.uris import SIDECAR_SUFFIX

FLAVOR_NAME = "lethe"
#: The version's tags its logged model carries too: what a reviewer scans in the Models view.
LOGGED_MODEL_TAGS = (SCENARIO_TAG, PARENT_VERSION_TAG, GATE_TAG, GATE_REASONS_TAG, METHOD_TAG,
                     MODEL_FINGERPRINT_TAG)
#: The run's artifact folders: the model (both sides) and the evidence.
MODEL_PATH = "model"
EVIDENCE_PATH = "evidence"
# lethe.models.checkpoint's file names and card format (not imported: it loads torch).
WEIGHTS_FILE, CARD_FILE, CARD_FORMAT = "model.safetensors", "model.json", "lethe-model/1"


def flavor_conf() -> dict[str, Any]:
    """The flavour's entry in MLmodel: where lethe's files are, relative to it, and their format."""
    return {"card": CARD_FILE, "weights": WEIGHTS_FILE, "card_format": CARD_FORMAT,
            "lethe_version": lethe.__version__}


def file_manifest(directory: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file below `directory`."""
    return {p.relative_to(directory).as_posix(): sha256_file(p)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def model_files(model_dir: Path) -> list[Path]:
    """The files of a model directory that are registered: at its top level, the weights, the card and
    lethe's JSON records (train.json, dampening.json, ...) with their sidecars."""
    def wanted(name: str) -> bool:
        name = name.removesuffix(SIDECAR_SUFFIX)
        return name in (WEIGHTS_FILE, CARD_FILE) or name.endswith(".json")

    return sorted(p for p in model_dir.iterdir() if p.is_file() and not p.is_symlink() and wanted(p.name))


def files_manifest(model_dir: Path) -> dict[str, str]:
    """Name -> sha256 of `model_files(model_dir)`: the files a version registers."""
    return {p.name: sha256_file(p) for p in model_files(model_dir)}


def copy_model_files(model_dir: Path, dest: Path) -> Path:
    """`dest` holding a copy of `model_files(model_dir)` only; returns it."""
    dest.mkdir(parents=True)
    for path in model_files(model_dir):
        shutil.copy2(path, dest / path.name)
    return dest


# --- save and log --------------------------------------------------------------------------------------

def verify_model_dir(model_dir: Path) -> Any:
    """The card of lethe model directory `model_dir`, after every check a later run would make
    (sidecars, shapes, finite weights, fingerprint): refused here, not by every later run."""
    if not (model_dir / WEIGHTS_FILE).is_file() or not (model_dir / CARD_FILE).is_file():
        raise RegistryError(f"{model_dir} is not a lethe model directory ({WEIGHTS_FILE} + {CARD_FILE})")
    from lethe.models import verify_model_dir as verify  # torch loads only when a version is registered

    return verify(model_dir)


def save_model(model_dir: Path, path: Path) -> dict[str, str]:
    """Write the MLflow side of `model_dir` (its pyfunc, with the flavour in MLmodel) into `path`;
    returns its manifest. `model_dir` must not hold MLflow's files itself (they would collide)."""
    from lethe.registry.serving import save_served_model  # torch-heavy

    files = save_served_model(model_dir, path, flavors={FLAVOR_NAME: flavor_conf()})
    clash = sorted({f.split("/")[0] for f in files} & {p.name for p in model_dir.iterdir()})
    if clash:
        raise RegistryError(f"{model_dir} already holds files of an MLflow model ({', '.join(clash)}): "
                            "register a lethe model directory without them")
    return file_manifest(path)


def log_model(client: MlflowClient, run_id: str, model_dir: Path, served_dir: Path) -> None:
    """Both sides under the run's `model/`: lethe's files, and MLmodel beside them."""
    client.log_artifacts(run_id, str(model_dir), MODEL_PATH)
    client.log_artifacts(run_id, str(served_dir), MODEL_PATH)


def create_logged_model(client: MlflowClient, run: Any, name: str, tags: dict[str, str]) -> str:
    """An MLflow 3 logged model for the version that `run` (a RunInfo) registers, so that it shows in the
    experiment's Models view with its metrics (logged with its id). It holds no files: the weights stay
    once, under the run's `model/`, where retention retires them. Returns its id."""
    kept = {key: tags[key] for key in LOGGED_MODEL_TAGS if key in tags}
    return client.create_logged_model(run.experiment_id, name=name, source_run_id=run.run_id, tags=kept,
                                      model_type=FLAVOR_NAME).model_id


def finish_logged_model(client: MlflowClient, model_id: str, model_name: str, version: str) -> None:
    """The logged model names the registered version it became, and is ready."""
    client.set_logged_model_tags(model_id, {VERSION_OF_TAG: f"{model_name}/{version}"})
    client.finalize_logged_model(model_id, "READY")


# --- download and load ---------------------------------------------------------------------------------

def download_model(client: MlflowClient, run_id: str, metadata: VersionMetadata, dest_dir: Path, *,
                   what: str) -> Path:
    """Download lethe's model directory of a version (`what`: its name in errors) into `dest_dir`,
    checked against the manifest recorded when it was registered."""
    expected = metadata.model_manifest
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lethe-model-") as tmp:
        if expected and metadata.serving_manifest is not None:
            # MLflow's model files (MLmodel, TorchScript, ...) sit beside lethe's: fetch lethe's only.
            local = Path(tmp) / MODEL_PATH
            with quiet_mlflow():  # else a progress bar per file
                for name in expected:
                    into = (local / name).parent  # MLflow puts a file's download under its base name
                    into.mkdir(parents=True, exist_ok=True)
                    with contextlib.suppress(MlflowException, OSError):  # a missing file: refused below
                        client.download_artifacts(run_id, f"{MODEL_PATH}/{name}", str(into))
        else:
            local = Path(client.download_artifacts(run_id, MODEL_PATH, tmp))
        actual = file_manifest(local)
        if expected and actual != expected:
            bad = sorted(k for k in set(expected) | set(actual) if expected.get(k) != actual.get(k))
            raise IntegrityError(f"model files of {what} differ from those registered: {', '.join(bad)}")
        if expected and not any(name.endswith(SIDECAR_SUFFIX) for name in expected):
            # Registered before model directories had sidecars: the manifest recorded at
            # registration vouches for the files just checked against it.
            from lethe.models import write_sidecars

            write_sidecars(local, recorded=expected)
        for path in local.iterdir():
            target = dest_dir / path.name
            if target.is_dir():
                shutil.rmtree(target)
            shutil.move(str(path), target)
    return dest_dir


def load_model(client: MlflowClient, run_id: str, metadata: VersionMetadata, *, what: str) -> tuple[Any, Any]:
    """(nn.Module, ModelCard) of a version, through `lethe.models.load_model`."""
    from lethe.models import load_model as load  # torch-heavy; only when a model is actually loaded

    with tempfile.TemporaryDirectory(prefix="lethe-model-") as tmp:
        return load(download_model(client, run_id, metadata, Path(tmp), what=what))
