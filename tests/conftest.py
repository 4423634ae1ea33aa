"""Shared fixtures for every test suite. Keep these names stable: other suites depend on them.

Data (session-scoped, read-only: do not modify their tensors in place):
- `digits_train`: SampleSet of scikit-learn digits, train split (1,438 images, 1x8x8, 10 classes,
  ids `digits/train/<i>`).
- `digits_test`: the same, test split (359 images, ids `digits/test/<i>`).

A trained model (session-scoped, trained once in about 5-10 s on 2 cores):
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
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lethe.data import SampleSet, load_dataset

DIGITS_CONVNET_EPOCHS = 6
DIGITS_CONVNET_KWARGS = {"width": 16}


@pytest.fixture(scope="session")
def digits_train() -> SampleSet:
    return load_dataset("digits", "train")


@pytest.fixture(scope="session")
def digits_test() -> SampleSet:
    return load_dataset("digits", "test")


@pytest.fixture(scope="session")
def digits_convnet_dir(tmp_path_factory: pytest.TempPathFactory, digits_train: SampleSet,
                       digits_test: SampleSet) -> Iterator[Path]:
    from lethe.models.baseline import train_model_dir

    out = tmp_path_factory.mktemp("digits-convnet")
    threads = torch.get_num_threads()
    # One thread: this model is so small that a second thread only adds synchronisation cost,
    # and on a busy CI machine oversubscribed threads are several times slower.
    torch.set_num_threads(1)
    try:
        record = train_model_dir("digits", "convnet", out, epochs=DIGITS_CONVNET_EPOCHS, batch_size=64,
                                 arch_kwargs=dict(DIGITS_CONVNET_KWARGS), seed=0, device="cpu",
                                 progress=False, train=digits_train, test=digits_test)
    finally:
        torch.set_num_threads(threads)
    assert record["test_accuracy"] >= 0.9, f"the shared digits convnet reached only {record['test_accuracy']}"
    yield out


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
