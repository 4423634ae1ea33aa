"""The champion served by MLflow alone: `mlflow.pyfunc.load_model("models:/NAME@champion")` and
`mlflow models serve --env-manager local`, against the MLflow server (artifacts in S3) on loopback,
in processes where `import lethe` fails, predict what lethe predicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from lethe.data import SampleSet
from tests.integration.conftest import VENV_BIN, MlflowServer, find_binary, free_port, http_ok, wait_until

if TYPE_CHECKING:
    from lethe.registry import Registry

MODEL_NAME = "it-served"
BLOCKED = "lethe is not installed where the model is served"
LOAD_AND_PREDICT = f"""
import json, sys
import numpy as np
try:
    import lethe
except ImportError as exc:
    assert str(exc) == {BLOCKED!r}, exc
else:
    raise SystemExit("lethe is importable")
import mlflow
out = mlflow.pyfunc.load_model(sys.argv[1]).predict(np.load(sys.argv[2]))
assert not [m for m in sys.modules if m.split(".")[0] == "lethe"]
print(json.dumps({{k: np.asarray(v).tolist() for k, v in out.items()}}))
"""


@pytest.fixture(scope="module")
def champion(mlflow_server: MlflowServer, digits_convnet_dir: Path, digits_test: SampleSet
             ) -> tuple[Registry, np.ndarray, torch.Tensor]:
    """The digits convnet as champion on the server; images and lethe's own logits for them."""
    from lethe.registry import Registry
    from lethe.registry.serving import input_shape, synthetic_images

    registry = Registry(mlflow_server.uri, MODEL_NAME)
    assert registry.register_version(digits_convnet_dir, gate={"passed": True}, scenario="base").is_champion
    model, card = registry.load_model("@champion")
    images = synthetic_images(input_shape(card), 4, seed=5)
    images = np.concatenate([images, digits_test.inputs[:2].numpy()])  # two real digits: confident answers
    with torch.no_grad():
        logits = model(card.normalization.apply(torch.from_numpy(images)))
    return registry, images, logits


@pytest.fixture
def without_lethe(mlflow_server: MlflowServer, tmp_path: Path) -> Iterator[dict[str, str]]:
    """An environment for the venv's python and mlflow in which `import lethe` fails (a package
    of that name first on the path, raising), pointed at the server and nothing else."""
    shim = tmp_path / "shim" / "lethe"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(f"raise ImportError({BLOCKED!r})\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_", "LETHE_", "PYTHON"))}
    # The venv's bin first, as in an activated venv: `mlflow models serve` execs `uvicorn` from PATH.
    env.update(PYTHONPATH=str(shim.parent), MLFLOW_TRACKING_URI=mlflow_server.uri,
               PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}")
    yield env


def check(predictions: dict, images: np.ndarray, logits: torch.Tensor, classes: list[str]) -> None:
    served = torch.tensor(predictions["logits"], dtype=torch.float32)
    torch.testing.assert_close(served, logits, atol=1e-4, rtol=0)
    assert predictions["predicted_class"] == logits.argmax(1).tolist()
    assert predictions["label"] == [classes[i] for i in logits.argmax(1).tolist()]
    np.testing.assert_allclose(np.sum(predictions["probabilities"], axis=1), 1.0, atol=1e-5)


def card_classes(registry: Registry) -> list[str]:
    _, card = registry.load_model("@champion")
    return list(card.classes or [str(i) for i in range(card.num_classes)])


def test_pyfunc_loads_the_champion_without_lethe(champion, without_lethe: dict[str, str],
                                                 tmp_path: Path) -> None:
    registry, images, logits = champion
    np.save(tmp_path / "images.npy", images)
    done = subprocess.run([sys.executable, "-c", LOAD_AND_PREDICT, f"models:/{MODEL_NAME}@champion",
                           str(tmp_path / "images.npy")], env=without_lethe, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    check(json.loads(done.stdout.splitlines()[-1]), images, logits, card_classes(registry))


def test_mlflow_models_serve_answers_like_lethe(champion, without_lethe: dict[str, str],
                                                tmp_path: Path) -> None:
    registry, images, logits = champion
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [find_binary("mlflow"), "models", "serve", "-m", f"models:/{MODEL_NAME}@champion",
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
            env=without_lethe, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/ping"), timeout=180, what="mlflow models serve",
                   process=server, log=log)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=json.dumps({"inputs": images.tolist()}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 15)
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, 9)
                server.wait()
    check(answer["predictions"], images, logits, card_classes(registry))
    assert BLOCKED not in log.read_text(errors="replace")  # nothing served tried to import lethe
