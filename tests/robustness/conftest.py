"""Fixtures for attacking the command line: a prepared home, an in-process runner, file snapshots.

- `attack_home` (module-scoped): a LETHE_HOME holding a trained digits model directory, a ledger with
  a few requests, and broken inputs (model cards, importances files, a plain file, ...); `paths`
  maps placeholder names (used as `{name}` in argv) to their paths.
- `run_cli(argv, env=...)`: `lethe.cli.main(argv)` in this process with the home's environment,
  returning exit code, stdout, stderr; an exception that escapes is returned as a traceback in stderr.
- `home_snapshot(root)`: sha256 and mtime of every file below `root`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from lethe.config import environment

SUBJECT_KEY = "robustness-test-key-of-at-least-32-bytes"


@dataclass(frozen=True)
class Result:
    code: int | str | None
    out: str
    err: str


@dataclass(frozen=True)
class AttackHome:
    root: Path
    paths: dict[str, str]
    env: dict[str, str | None]


def home_snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime (ns) of every file below `root`."""
    snapshot = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            snapshot[str(path.relative_to(root))] = (hashlib.sha256(path.read_bytes()).hexdigest(),
                                                     path.stat().st_mtime_ns)
    return snapshot


def run_in_process(argv: list[str], env: Mapping[str, str | None]) -> Result:
    from lethe.cli import main

    out, err = io.StringIO(), io.StringIO()
    with environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code: int | str | None = main(argv)
        except SystemExit as exc:
            code = exc.code
        except BaseException:  # noqa: BLE001 - an escaped exception is what these tests look for
            code = "exception"
            err.write(traceback.format_exc())
    return Result(code, out.getvalue(), err.getvalue())


def _write_card(directory: Path, source: Path, **changes: object) -> None:
    """A copy of the model directory `source` whose card has `changes` (dotted keys reach arch_kwargs),
    with its sha256 sidecars rewritten: the card's own checks, not the sidecar's, must refuse it."""
    from lethe.models.checkpoint import write_sidecars

    shutil.copytree(source, directory)
    card = json.loads((directory / "model.json").read_text())
    for key, value in changes.items():
        if key.startswith("arch_kwargs."):
            card["arch_kwargs"][key.split(".", 1)[1]] = value
        else:
            card[key] = value
    (directory / "model.json").write_text(json.dumps(card))
    write_sidecars(directory)


def _seal(path: Path) -> None:
    """Record the file's sha256 beside it, as lethe does for what it writes."""
    from lethe.storage import sha256_file

    path.with_name(path.name + ".sha256").write_text(f"{sha256_file(path)}  {path.name}\n")


def _importances_file(path: Path, metadata: str | None) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, str(path), metadata=None if metadata is None else {"lethe": metadata})
    _seal(path)


@pytest.fixture(scope="module")
def attack_home(tmp_path_factory: pytest.TempPathFactory, digits_convnet_dir: Path) -> AttackHome:
    from lethe.ledger import Ledger
    from lethe.ledger.engine import dispose_engines

    root = tmp_path_factory.mktemp("attack-home")
    model = root / "model"
    shutil.copytree(digits_convnet_dir, model)
    _write_card(root / "bad-width", model, **{"arch_kwargs.width": -1})
    _write_card(root / "bad-classes", model, num_classes="ten")
    _write_card(root / "bad-channels", model, in_channels=0)
    _write_card(root / "bad-kwargs", model, arch_kwargs=[1, 2])
    _write_card(root / "bad-format", model, format="something-else/9")
    shutil.copytree(model, root / "card-not-json")
    (root / "card-not-json" / "model.json").write_text("{not json")
    _seal(root / "card-not-json" / "model.json")
    shutil.copytree(model, root / "corrupt-weights")
    (root / "corrupt-weights" / "model.safetensors").write_bytes(b"\x00" * 64)
    _seal(root / "corrupt-weights" / "model.safetensors")

    imp = root / "importances"
    imp.mkdir()
    full = {"method": "lfssd", "batch_size": 1, "num_batches": 3, "num_samples": 3, "model_fingerprint": "x"}
    variants = {
        "not-json": "{oops", "a-list": "[1, 2]", "missing-key": json.dumps({"method": "lfssd"}),
        "string-batch": json.dumps({**full, "batch_size": "one"}),
        "bool-batches": json.dumps({**full, "num_batches": True}),
        "extra-key": json.dumps({**full, "surprise": 1}),
        "zero-samples": json.dumps({**full, "num_samples": 0}),
        "unknown-method": json.dumps({**full, "method": "fisher"}),
        "no-metadata": None,
    }
    for name, metadata in variants.items():
        _importances_file(imp / f"{name}.safetensors", metadata)
    (imp / "garbage.safetensors").write_bytes(b"not a safetensors file at all")
    _seal(imp / "garbage.safetensors")

    plain = root / "plain.txt"
    plain.write_text("a plain file\n")
    (root / "empty-ids.txt").write_text("# nothing here\n")
    (root / "bad-thresholds.yaml").write_text("min_retain_accuracy: [unclosed\n")

    ledger_url = f"sqlite:///{root / 'ledger.db'}"
    ledger = Ledger(ledger_url, subject_key=SUBJECT_KEY.encode())
    pending = ledger.add("alice", ["digits/train/1", "digits/train/2"]).request.id
    ledger.add("bob")
    dispose_engines()  # no pooled connection of this module outlives it

    paths = {"home": str(root), "model": str(model), "plain": str(plain), "imp": str(imp),
             "new": str(root / "new-out"), "pending_id": pending, "ledger_url": ledger_url,
             "missing": str(root / "does-not-exist")}
    paths.update({name: str(root / name) for name in (
        "bad-width", "bad-classes", "bad-channels", "bad-kwargs", "bad-format", "card-not-json",
        "corrupt-weights")})
    paths.update(empty_ids=str(root / "empty-ids.txt"), bad_thresholds=str(root / "bad-thresholds.yaml"))
    env = {"LETHE_HOME": str(root), "LETHE_SUBJECT_KEY": SUBJECT_KEY, "LETHE_LEDGER_URL": None,
           "LETHE_TRACKING_URI": None, "MLFLOW_TRACKING_URI": None, "LETHE_DEMO": None,
           "LETHE_ARTIFACTS": None, "LETHE_DATA_DIR": None}
    return AttackHome(root, paths, env)
