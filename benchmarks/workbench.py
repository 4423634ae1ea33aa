"""What every benchmark part shares: the data, statistics over seeds, the machine's description (timers and
JSON output: benchmarks/timing.py)."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import shlex
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lethe.data import SampleSet, load_dataset
from lethe.errors import DataError


@dataclass(frozen=True)
class BenchData:
    """The splits a run uses: models are trained on `train` (a seeded slice of the train split);
    the speed benchmarks time D passes over `speed_train`; `test` is the whole test split."""

    train: SampleSet
    test: SampleSet
    speed_train: SampleSet
    note: str = ""


def take(samples: SampleSet, limit: int | None, *, seed: int) -> SampleSet:
    """A seeded random subset of `limit` samples, kept in the split's order (all when None)."""
    if limit is None or limit >= len(samples):
        return samples
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(samples), generator=generator)[:limit].sort().values
    return samples.subset(chosen)


def load_bench_data(dataset: str, train_limit: int | None, speed_train_limit: int | None, *,
                    fallback: str | None = None) -> BenchData:
    """The splits; with `fallback`, a missing data set is replaced (and the swap recorded)."""
    try:
        train, test = load_dataset(dataset, "train"), load_dataset(dataset, "test")
        note = ""
    except DataError as exc:
        if fallback is None:
            raise
        train, test = load_dataset(fallback, "train"), load_dataset(fallback, "test")
        note = f"{dataset} unavailable ({exc}); ran on {fallback}"
    return BenchData(take(train, train_limit, seed=0), test, take(train, speed_train_limit, seed=0), note)


def mean(stat: Mapping[str, Any] | None) -> float | None:
    """The mean of a {mean, std, n} stat (None when there is none)."""
    return None if not stat else stat.get("mean")


def mean_std(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """Mean and sample standard deviation (0 for a single value) of the finite values."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return {"mean": None, "std": None, "n": 0}
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return {"mean": statistics.fmean(finite), "std": std, "n": len(finite)}


def means(rows: Sequence[Mapping[str, Any]], keys: Iterable[str],
          value: Callable[[Any, str], Any] = dict.get) -> dict[str, dict[str, Any]]:
    """Mean ± std over seeds (`rows`, one per seed) of each key's value."""
    return {k: mean_std([value(r, k) for r in rows]) for k in keys}


def distances(rows: Sequence[Mapping[str, Any]], gold: Sequence[Mapping[str, Any]], keys: Iterable[str],
              value: Callable[[Any, str], Any] = dict.get) -> dict[str, dict[str, Any]]:
    """Mean ± std over seeds of |row − gold| per seed (the distance to the retrained model)."""
    pairs = {k: [(value(r, k), value(g, k)) for r, g in zip(rows, gold, strict=True)] for k in keys}
    return {k: mean_std([None if a is None or b is None else abs(a - b) for a, b in pair])
            for k, pair in pairs.items()}


def machine(device: torch.device) -> dict[str, Any]:
    """The machine a result was measured on, as the README names it."""
    names = []
    with contextlib.suppress(OSError):
        names = [x.split(":", 1)[1].strip() for x in Path("/proc/cpuinfo").read_text().splitlines()
                 if x.startswith("model name")]
    cpu = names[0] if names else platform.processor() or platform.machine()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
        "device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        # Timings on a busy machine are not comparable: say how busy it was when the run started.
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def command_line(script: str, argv: Sequence[str]) -> str:
    """The command that reproduces a result, without `--out` (where the result went is a path of
    the machine that ran it, not part of the recipe)."""
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--out":
            skip = True
        elif not arg.startswith("--out="):
            args.append(shlex.quote(arg))
    return " ".join(["python", script, *args])
