"""Timers and JSON output every benchmark shares; torch only, so the GPU script can use them too."""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch


def timed(fn: Callable[[], Any], device: torch.device | None = None) -> tuple[Any, float]:
    """`fn()` and its wall-clock seconds; the device is synchronised on both ends."""
    cuda = device is not None and device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = fn()
    if cuda:
        torch.cuda.synchronize(device)
    return result, time.perf_counter() - start


def median_seconds(fn: Callable[[], Any], repeats: int, device: torch.device | None = None, *,
                   warm_up: bool = True) -> dict[str, Any]:
    """Median, min and max of `repeats` timed calls (after one untimed warm-up call)."""
    if warm_up:
        fn()
    times = [timed(fn, device)[1] for _ in range(repeats)]
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "repeats": repeats}


def interleaved(sides: Mapping[str, Callable[[], Any]], repeats: int, device: torch.device, *,
                warm_up: bool = True) -> dict[str, Any]:
    """Each side once to warm up, then `repeats` rounds of every side in turn (so drift in machine load hits
    all sides alike); medians, and the per-round ratio of the first side to the second (median, lowest,
    highest)."""
    for fn in sides.values() if warm_up else ():
        fn()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, fn in sides.items():
            times[name].append(timed(fn, device)[1])
    first, second = list(times.values())[:2]
    rounds = [a / b for a, b in zip(first, second, strict=True)]
    return {**{f"{name}_s": statistics.median(t) for name, t in times.items()},
            "ratio": statistics.median(first) / statistics.median(second),
            "ratio_spread": [min(rounds), max(rounds)], "repeats": repeats}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def jsonable(value: Any) -> Any:
    """Strict JSON: NaN/Inf become null, tuples lists, numpy/torch scalars Python numbers."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(payload), indent=2, allow_nan=False) + "\n")
    return path


def write_headline(path: Path, result: dict[str, Any]) -> None:
    """Writes a speed result and prints its headline ratios."""
    write_json(path, result)
    print(f"written: {path}")
    for key, value in result["headline"].items():
        print(f"  {key}: {'–' if value is None else f'{value:.3g}'}")


@contextmanager
def section(title: str) -> Iterator[None]:
    """Prints what runs and how long it took, so a long `make bench` log can be followed."""
    print(f"== {title} ...", flush=True)
    start = time.perf_counter()
    yield
    print(f"== {title}: {time.perf_counter() - start:.1f} s", flush=True)
