"""Speed: what caching D importances buys a request, unlearning against retraining, how the D pass
scales with |D|, and K merged shards against one pass.

Every timing is wall-clock on the device given (CUDA timings are synchronised).
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.workbench import Stopwatch, median_seconds, timed
from lethe.data import SampleSet, resolve_forget_set, subject_map
from lethe.steps.evaluate import Request
from lethe.steps.importance_pass import importances_of
from lethe.steps.unlearn import choose_dampening, make_target
from lethe.unlearning import Importances, calibrate_alpha, dampen


def d_pass(
    model: nn.Module, samples: SampleSet, batch_size: int, device: torch.device, method: str = "lfssd"
) -> tuple[Importances, float]:
    """The importances over `samples` and the seconds they took (batch size 1: per sample, as the
    product's default; see lethe.steps.importance_pass)."""
    return timed(
        lambda: importances_of(
            model, samples, batch_size=batch_size, method=method, device=str(device), progress=False
        ),
        device,
    )


def per_sample_cost(
    model: nn.Module, samples: SampleSet, *, batch_size: int, device: torch.device
) -> dict[str, Any]:
    """The per-sample pass (lethe's default semantics) against the batch-mean pass at `batch_size`
    over the same samples: what per-sample semantics cost."""
    d_pass(model, samples.subset(torch.arange(min(2 * batch_size, len(samples)))), 1, device)  # warm-up
    _, per_sample_s = d_pass(model, samples, 1, device)
    _, batched_s = d_pass(model, samples, batch_size, device)
    return {
        "samples": len(samples),
        "batch_size": batch_size,
        "per_sample_s": per_sample_s,
        "batched_s": batched_s,
        "per_sample_samples_per_s": len(samples) / per_sample_s,
        "batched_samples_per_s": len(samples) / batched_s,
        "per_sample_cost_ratio": per_sample_s / batched_s,
    }


def pick_subjects(train: SampleSet, size: int, *, seed: int) -> list[str]:
    """Synthetic subjects, in a seeded random order, until they own at least `size` samples."""
    mapping = subject_map(train)
    names = sorted(mapping)
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed)).tolist()
    chosen, owned = [], 0
    for k in order:
        chosen.append(names[k])
        owned += len(mapping[names[k]])
        if owned >= size:
            break
    return chosen


def request_latency(
    model: nn.Module,
    train: SampleSet,
    test: SampleSet,
    *,
    size: int,
    batch_size: int,
    repeats: int,
    device: torch.device,
    paper_alpha: float = 10.0,
) -> dict[str, Any]:
    """One subject request of `size` samples with the D importances cached (loaded from a file)
    against the same request recomputing them.

    `assd` is the label-free request with α from the ASSD rule: load D, the Df pass, α, dampen a
    copy. `search` is the request with lethe's default choice instead (`choose_dampening`: the
    cut-off and α searched, forward passes over the forget set and fixed retain and held-out samples
    per trial).
    """
    split = resolve_forget_set(train, subjects=pick_subjects(train, size, seed=0))
    full, d_seconds = d_pass(model, train, batch_size, device)
    request = Request(
        dataset=train.name, scenario="subject", train=train, test=test, split=split, forget_class=None
    )

    with tempfile.TemporaryDirectory(prefix="lethe-bench-") as tmp:
        path = full.save(Path(tmp) / "full.safetensors")

        def forget_pass() -> Importances:
            return importances_of(
                model, split.forget, batch_size=batch_size, device=str(device), progress=False
            )

        def assd_request(cached: Importances | None = None) -> nn.Module:
            d = cached if cached is not None else Importances.load(path)
            f = forget_pass()
            alpha = calibrate_alpha(d, f, n_full=len(train), n_forget=len(split.forget))
            candidate = copy.deepcopy(model)
            dampen(candidate, d, f, alpha=alpha)
            return candidate

        trials: list[int] = []

        def search_request() -> nn.Module:
            d = Importances.load(path)
            f = forget_pass()
            target = make_target(model, request, device=str(device))
            choice = choose_dampening(model, d, f, request, target)
            trials.append(len((choice.selection or {}).get("trials", [])))
            candidate = copy.deepcopy(model)
            dampen(candidate, d, f, alpha=choice.alpha, parameters=choice.parameters)
            return candidate

        assd = median_seconds(assd_request, repeats, device)
        forget_only = median_seconds(forget_pass, repeats, device)
        load = median_seconds(lambda: Importances.load(path), repeats, device)
        # The search's forward passes are warm from the requests above; it is the slow part, so
        # it runs fewer times.
        search = median_seconds(search_request, max(1, repeats // 2), device, warm_up=False)
        f = forget_pass()
        dampen_only = median_seconds(
            lambda: dampen(copy.deepcopy(model), full, f, alpha=paper_alpha), repeats, device
        )

    recomputed_assd = d_seconds + assd["median_s"]
    recomputed_search = d_seconds + search["median_s"]
    return {
        "forget_samples": len(split.forget),
        "train_samples": len(train),
        "batch_size": batch_size,
        "d_pass_s": d_seconds,
        "cached_request_s": assd["median_s"],
        "cached_request": assd,
        "recomputed_request_s": recomputed_assd,
        "cached_speedup": recomputed_assd / assd["median_s"],
        "parts": {
            "load_d_s": load["median_s"],
            "forget_pass_s": forget_only["median_s"],
            "dampen_copy_s": dampen_only["median_s"],
        },
        "search_request_s": search["median_s"],
        "search_request": search,
        "search_recomputed_request_s": recomputed_search,
        "search_cached_speedup": recomputed_search / search["median_s"],
        "search_trials": trials[-1],
    }


def _batch_aligned_shards(n: int, batch_size: int, shards: int) -> list[tuple[int, int]]:
    """Sample ranges of `shards` contiguous groups of whole batches (the last holds any remainder)."""
    batches = -(-n // batch_size)
    edges = np.linspace(0, batches, shards + 1).round().astype(int).tolist()
    return [
        (a * batch_size, min(b * batch_size, n)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a
    ]


def scaling(
    model: nn.Module,
    train: SampleSet,
    *,
    sizes: tuple[int, ...],
    batch_size: int,
    shards: int,
    device: torch.device,
) -> dict[str, Any]:
    """D-pass time against |D| with a least-squares line; K shards of the largest |D| merged
    against one pass over it (they should agree to float rounding)."""
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(1))
    sizes = tuple(n for n in sizes if n <= len(train))
    d_pass(model, train.subset(order[:batch_size]), batch_size, device)  # warm-up: kernels, allocator
    points, largest = [], None
    for n in sizes:
        part = train.subset(order[:n].sort().values)
        importances, seconds = d_pass(model, part, batch_size, device)
        points.append({"samples": n, "seconds": seconds, "samples_per_s": n / seconds})
        largest = (part, importances)
    x = np.array([p["samples"] for p in points], dtype=float)
    y = np.array([p["seconds"] for p in points], dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    predicted = slope * x + intercept
    r2 = 1.0 - float(((y - predicted) ** 2).sum()) / max(float(((y - y.mean()) ** 2).sum()), 1e-12)
    fit = {
        "seconds_per_1000_samples": slope * 1000,
        "intercept_s": intercept,
        "r2": r2,
        "max_relative_residual": float(np.max(np.abs(y - predicted) / y)),
    }

    part, one_pass = largest
    shard_results, shard_seconds = [], []
    for start, stop in _batch_aligned_shards(len(part), batch_size, shards):
        piece = part.subset(torch.arange(start, stop))
        importances, seconds = d_pass(model, piece, batch_size, device)
        shard_results.append(importances)
        shard_seconds.append(seconds)
    with Stopwatch(device) as merge_watch:
        merged = Importances.merge(shard_results)
    abs_diff = max(float((merged[n].double() - one_pass[n].double()).abs().max()) for n in one_pass)
    scale = max(float(one_pass[n].double().abs().max()) for n in one_pass)
    exact = all(torch.equal(merged[n], one_pass[n]) for n in one_pass)
    return {
        "points": points,
        "fit": fit,
        "shards": {
            "samples": len(part),
            "k": len(shard_results),
            "batch_size": batch_size,
            "shard_seconds": shard_seconds,
            "merge_seconds": merge_watch.seconds,
            "one_pass_seconds": points[-1]["seconds"],
            "parallel_seconds_ideal": max(shard_seconds) + merge_watch.seconds,
            "num_batches": {"merged": merged.num_batches, "one_pass": one_pass.num_batches},
            "max_abs_diff": abs_diff,
            "max_abs_value": scale,
            "max_rel_diff": abs_diff / max(scale, 1e-30),
            "bit_identical": exact,
            "allclose_rtol_1e-5": all(
                torch.allclose(merged[n], one_pass[n], rtol=1e-5, atol=1e-12 * scale) for n in one_pass
            ),
        },
    }
