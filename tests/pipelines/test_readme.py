"""The README's by-hand block, run as written (bash, a fresh directory, the installed console script),
then its Python examples and its other commands against what that block left behind.

One local scheduled run on digits (2 epochs): the cheapest honest version of what a reader does. The
one liberty taken: the directory starts with an MLflow database whose schema is in place (copied, as
every pipeline test does), since creating it costs seconds and says nothing about the README.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.pipelines.helpers import ENVIRONMENT, _empty_mlflow_db

pytestmark = pytest.mark.slow
README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent


def by_hand_block(text: str) -> str:
    """The bash block that follows "The same steps by hand"."""
    start = text.index("The same steps by hand")
    found = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert found, "no bash block after 'The same steps by hand'"
    return found.group(1)


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def _environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (*ENVIRONMENT, "LETHE_HOME", "LETHE_DEMO",
                                                             "PYTHONPATH")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    return env


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900, check=False)


def test_the_by_hand_block_runs_as_written(tmp_path: Path) -> None:
    text = README.read_text()
    block = by_hand_block(text)
    assert "--dataset digits" in block and "--epochs 2" in block  # the cheap, honest version
    workdir = tmp_path / "reader"
    (workdir / ".lethe").mkdir(parents=True)
    shutil.copyfile(_empty_mlflow_db(), workdir / ".lethe" / "mlflow.db")
    env = _environment(workdir)
    # The key the block exports is needed by the commands run after it here: print it at the end.
    done = _bash(block + 'echo "KEY=$LETHE_SUBJECT_KEY"\n', workdir, env)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    out = done.stdout
    env["LETHE_SUBJECT_KEY"] = re.search(r"^KEY=(\w+)$", out, re.M).group(1)
    assert "registered version 1, alias champion" in out
    assert out.count("(recorded)") == 2
    # `pipeline run --local` says what happened: the version, the gate, each request's state.
    assert "model versions (before → after):" in out and "erasure requests:" in out
    states = re.search(r"^2 request\(s\): (.*)$", out, re.M)
    assert states, out
    fulfilled = int(m.group(1)) if (m := re.search(r"(\d+) fulfilled", states.group(1))) else 0
    assert "failed" not in states.group(1)
    assert "pipeline scheduled succeeded" in out
    assert f"{fulfilled} certificate(s) written to certificates/" in out
    assert len(list((workdir / "certificates").glob("*.json"))) == fulfilled

    # The refusal the README describes: an id outside digits/train is refused at filing, in one line.
    refused = re.search(r"`(lethe request add --subject bob@example.org --samples [^`]+)`", text).group(1)
    before = (workdir / ".lethe" / "ledger.db").read_bytes()
    done = _bash(refused, workdir, env)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "not in digits/train (1,438 samples): digits/train/4242" in done.stderr
    assert (workdir / ".lethe" / "ledger.db").read_bytes() == before

    # The Python examples, on what the block left: the product's defaults, then the engine.
    product, engine = python_blocks(text)[:2]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        for name in (*ENVIRONMENT, "LETHE_HOME", "LETHE_DEMO"):
            patch.delenv(name, raising=False)
        patch.setenv("LETHE_SUBJECT_KEY", env["LETHE_SUBJECT_KEY"])
        namespace: dict[str, object] = {}
        exec(compile(product, "README-product", "exec"), namespace)
        result = namespace["result"]
        # The product's defaults: α searched, importances per sample (batch size 1).
        assert result.alpha_method == "search" and result.importances["batch_size"] == 1, result.importances

        from lethe.data import load_dataset
        from lethe.models import load_model

        train = load_dataset("digits", "train")
        some = train.subset(torch.arange(0, len(train), 8))  # the engine's pass: any batches will do
        forget_set = train.subset(train.indices_of(["digits/train/17", "digits/train/42"]))
        namespace = {"model": load_model("models/base")[0],
                     "train_batches": some.batches(64, with_labels=False),
                     "forget_batches": forget_set.batches(64, with_labels=False)}
        exec(compile(engine, "README-engine", "exec"), namespace)
        assert namespace["full"].batch_size == 1 and namespace["forget"].num_samples == 2


def test_the_mlflow_ui_command_opens_the_demos_database(tmp_path: Path, monkeypatch) -> None:
    from lethe.config import settings
    from lethe.demo import demo_environment

    text = README.read_text()
    uri = re.search(r"mlflow ui --backend-store-uri (sqlite:///\S+?)`", text).group(1)
    monkeypatch.chdir(tmp_path)
    for name in ("LETHE_HOME", "LETHE_TRACKING_URI", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    with demo_environment(settings().home / "demo"):  # as `make demo` runs it, from the checkout
        written = settings().tracking
    assert Path(uri.removeprefix("sqlite:///")).resolve() == Path(written.removeprefix("sqlite:///"))
