"""Shared fixtures for every test suite. Keep these names stable: other suites depend on them.

Data (session-scoped, read-only: do not modify their tensors in place):
- `digits_train`: SampleSet of scikit-learn digits, train split (1,438 images, 1x8x8, 10 classes,
  ids `digits/train/<i>`).
- `digits_test`: the same, test split (359 images, ids `digits/test/<i>`).

A trained model (session-scoped, trained once in about 5-10 s on 2 cores; under pytest-xdist once
for all workers, in the run's shared temp directory, the others wait for it):
- `digits_convnet_dir`: Path of a model directory (model.safetensors, model.json, train.json) holding
  a `convnet` (width 16) trained on `digits_train` with seed 0, test accuracy >= 0.9 (asserted here).
  Written by `lethe.models.baseline.train_model_dir`, exactly as `lethe train --dataset digits
  --model convnet --arch-arg width=16 --epochs 6 --batch-size 64` writes it. Read-only: copy it
  (shutil.copytree) before changing anything in it.
- `digits_convnet`: function-scoped, a fresh `(model, card)` loaded from `digits_convnet_dir`
  (CPU, eval mode): safe to unlearn or modify in place.
- `digits_convnet_train_record`: the dict in `digits_convnet_dir/train.json`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lethe.data import SampleSet, load_dataset

DIGITS_CONVNET_EPOCHS = 6
DIGITS_CONVNET_KWARGS = {"width": 16}
#: Tests below this path start real servers: under `--dist loadgroup` they run on one xdist worker.
SERVER_TIER = "tests/integration/"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`--dist loadgroup` (`make test`) with the integration tier as one group: one worker runs it and
    starts each server once (see tests/integration/conftest.py). The group comes from the test's path:
    an `xdist_group` mark cannot make it here, since pytest 9 keeps a node's id where xdist 3.8's
    loadgroup no longer appends the group name."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class ServerTierScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return SERVER_TIER if nodeid.startswith(SERVER_TIER) else super()._split_scope(nodeid)

    return ServerTierScheduling(config, log)


@pytest.fixture(scope="session")
def digits_train() -> SampleSet:
    return load_dataset("digits", "train")


@pytest.fixture(scope="session")
def digits_test() -> SampleSet:
    return load_dataset("digits", "test")


def shared_temp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's temp directory that every pytest-xdist worker sees (each worker's own basetemp is
    below it); without xdist, the basetemp."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def digits_convnet_dir(tmp_path_factory: pytest.TempPathFactory, digits_train: SampleSet,
                       digits_test: SampleSet) -> Iterator[Path]:
    from filelock import FileLock

    out = shared_temp_dir(tmp_path_factory) / "digits-convnet"
    with FileLock(f"{out}.lock"):  # one worker trains; the others wait and read what it wrote
        if not (out / "train.json").exists():
            _train_digits_convnet(out, digits_train, digits_test)
    record = json.loads((out / "train.json").read_text())
    assert record["test_accuracy"] >= 0.9, f"the shared digits convnet reached only {record['test_accuracy']}"
    yield out


def _train_digits_convnet(out: Path, digits_train: SampleSet, digits_test: SampleSet) -> None:
    from lethe.models.baseline import train_model_dir

    partial = out.with_name(f"{out.name}.partial")  # renamed when whole: `out` is never half written
    shutil.rmtree(partial, ignore_errors=True)
    threads = torch.get_num_threads()
    # One thread: this model is so small that a second thread only adds synchronisation cost,
    # and on a busy CI machine oversubscribed threads are several times slower.
    torch.set_num_threads(1)
    try:
        train_model_dir("digits", "convnet", partial, epochs=DIGITS_CONVNET_EPOCHS, batch_size=64,
                        arch_kwargs=dict(DIGITS_CONVNET_KWARGS), seed=0, device="cpu",
                        progress=False, train=digits_train, test=digits_test)
    finally:
        torch.set_num_threads(threads)
    partial.rename(out)


@pytest.fixture
def digits_convnet(digits_convnet_dir: Path) -> tuple[torch.nn.Module, object]:
    from lethe.models import load_model

    return load_model(digits_convnet_dir)


@pytest.fixture(scope="session")
def digits_convnet_train_record(digits_convnet_dir: Path) -> dict:
    return json.loads((digits_convnet_dir / "train.json").read_text())


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for the test: tiny models gain nothing from threads, and on a busy 2-core
    runner a second thread only adds synchronisation cost."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
