"""Trained models for the benchmarks, cached under LETHE_HOME/bench/models keyed by their recipe.

Training is the one expensive thing the benchmarks do (an original per seed, a retrained model per
scenario and seed), so a rerun with the same recipe on the same data reuses the weights, and
the seconds the training took when it ran (`cached: true` says so).
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import lethe
from lethe.config import settings
from lethe.data import SampleSet
from lethe.errors import LetheError
from lethe.models import build_model, load_model, save_model
from lethe.models.training import finetune, train_classifier

RECORD_FILE = "bench.json"


def cache_key(fields: dict[str, Any]) -> str:
    """A digest of everything that decides a model's weights."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def cached_model(folder: Path, record_file: str) -> tuple[nn.Module, dict[str, Any]] | None:
    """A cache entry's model and training record; None (and the entry removed) when missing or unreadable."""
    if (folder / record_file).is_file():
        try:
            model, _ = load_model(folder)
            return model.eval(), json.loads((folder / record_file).read_text())
        except (LetheError, OSError, ValueError):
            pass
    shutil.rmtree(folder, ignore_errors=True)  # unreadable entry: train afresh
    return None


@dataclass(frozen=True)
class Recipe:
    """How a model is trained from scratch: the same for the original and every retrained model."""

    arch: str
    epochs: int
    batch_size: int = 128
    lr: float = 3e-3

    def key(self, data: SampleSet, seed: int) -> str:
        """A digest of everything that decides the weights: recipe, seed, the exact training data."""
        return cache_key({**self.__dict__, "seed": seed, "data": data.fingerprint(),
                          "lethe": lethe.__version__, "torch": torch.__version__.split("+")[0]})


@dataclass
class Trained:
    model: nn.Module
    seconds: float  # wall time of the training, when it ran
    cached: bool
    record: dict[str, Any]


def cache_root() -> Path:
    return settings().home / "bench" / "models"


def train_or_load(recipe: Recipe, data: SampleSet, *, seed: int, device: torch.device, use_cache: bool = True,
                  progress: bool = False) -> Trained:
    """The model `recipe` trains on `data` with `seed`: from the cache, or trained (and cached)."""
    folder = cache_root() / recipe.key(data, seed)
    hit = cached_model(folder, RECORD_FILE) if use_cache else None
    if hit and "seconds" in hit[1]:
        return Trained(hit[0], float(hit[1]["seconds"]), True, hit[1])
    torch.manual_seed(seed)
    model = build_model(recipe.arch, num_classes=data.num_classes, in_channels=data.in_channels)
    result = train_classifier(model, data, None, epochs=recipe.epochs, batch_size=recipe.batch_size,
                              lr=recipe.lr, seed=seed, device=device, progress=progress)
    record = {"recipe": recipe.__dict__, "seed": seed, "n_train": len(data), "seconds": result.seconds,
              "train_accuracy": result.train_accuracy, "device": result.device,
              "torch_threads": torch.get_num_threads()}
    if use_cache:
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        save_model(model, tmp, {"dataset": data.name, "normalization": data.normalization,
                                "dataset_fingerprint": data.fingerprint()})
        (tmp / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)  # a half-written entry is never mistaken for a finished one
    return Trained(model.eval(), result.seconds, False, record)


def finetuned(original: nn.Module, retain: SampleSet, *, epochs: int, seed: int,
              device: torch.device) -> tuple[nn.Module, float]:
    """The finetune baseline: a copy of `original`, `epochs` more epochs on `retain`."""
    model = copy.deepcopy(original)
    result = finetune(model, retain, epochs=epochs, seed=seed, device=device, progress=False)
    return model.eval(), result.seconds
