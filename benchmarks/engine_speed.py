"""Engine speed: the importance pass against a bare forward+backward, and dampening on ResNet18.

    python -m benchmarks.engine_speed [--device cpu|cuda] [--repeats 7] [--out benchmarks/results/engine.json]

Targets (issue 2): importance pass ≤ 1.05× a bare forward+backward over the same batches (median of
≥ 5 interleaved runs); `dampen` on ResNet18 (11 M parameters) < 1 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from lethe.models import build_model
from lethe.unlearning import Importances, compute_importances, dampen, model_fingerprint


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_forward_backward(model: torch.nn.Module, batches: list[torch.Tensor]) -> None:
    """The floor: the same objective, forward + backward into .grad, nothing accumulated."""
    model.eval()
    for x in batches:
        model.zero_grad(set_to_none=True)
        model(x).pow(2).sum(dim=1).mean().backward()
    model.zero_grad(set_to_none=True)


def importance_overhead(
    arch: str,
    shape: tuple[int, int, int],
    n_batches: int,
    batch_size: int,
    repeats: int,
    device: torch.device,
) -> dict:
    torch.manual_seed(0)
    model = build_model(arch, num_classes=10, in_channels=shape[0]).to(device)
    batches = [torch.randn(batch_size, *shape, device=device) for _ in range(n_batches)]
    bare_forward_backward(model, batches[:2])  # warm-up (allocator, kernels)
    compute_importances(model, batches[:2], progress=False)
    bare, ours = [], []
    for _ in range(repeats):  # interleaved, so drift in machine load hits both alike
        _sync(device)
        start = time.perf_counter()
        bare_forward_backward(model, batches)
        _sync(device)
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        compute_importances(model, batches, progress=False)
        _sync(device)
        ours.append(time.perf_counter() - start)
    return {
        "model": arch,
        "input_shape": list(shape),
        "batches": n_batches,
        "batch_size": batch_size,
        "repeats": repeats,
        "bare_seconds_median": statistics.median(bare),
        "importances_seconds_median": statistics.median(ours),
        "ratio": statistics.median(ours) / statistics.median(bare),
    }


def dampen_speed(repeats: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = build_model("resnet18-cifar", num_classes=10, in_channels=3).to(device)
    fingerprint = model_fingerprint(model)
    meta = dict(method="lfssd", batch_size=64, num_batches=1, num_samples=64, model_fingerprint=fingerprint)
    full = Importances({n: torch.rand_like(p) for n, p in model.named_parameters()}, **meta)
    forget = Importances({n: torch.rand_like(p) * 12 for n, p in model.named_parameters()}, **meta)
    times, fraction = [], 0.0
    for _ in range(repeats):
        candidate = build_model("resnet18-cifar", num_classes=10, in_channels=3).to(device)
        candidate.load_state_dict(model.state_dict())
        _sync(device)
        start = time.perf_counter()
        report = dampen(candidate, full, forget, alpha=10.0)
        _sync(device)
        times.append(time.perf_counter() - start)
        fraction = report.fraction
    return {
        "model": "resnet18-cifar",
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds_median": statistics.median(times),
        "seconds_max": max(times),
        "fraction_dampened": fraction,
        "repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="fewer batches, for CI smoke runs")
    parser.add_argument("--out", default="benchmarks/results/engine.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    n_batches = 4 if args.quick else 20
    result = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "threads": torch.get_num_threads(),
            "device": str(device),
            "cuda": torch.cuda.get_device_name() if device.type == "cuda" else None,
        },
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "importance_overhead": [
            importance_overhead("convnet", (1, 28, 28), n_batches, 128, args.repeats, device),
        ],
        "dampen": dampen_speed(args.repeats, device),
    }
    if device.type == "cuda" or not args.quick:
        result["importance_overhead"].append(
            importance_overhead(
                "resnet18-cifar", (3, 32, 32), max(n_batches // 4, 2), 64, args.repeats, device
            )
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for row in result["importance_overhead"]:
        print(
            f"importance pass / bare fwd+bwd ({row['model']}, {row['batches']}x{row['batch_size']}): "
            f"{row['ratio']:.3f}  ({row['importances_seconds_median']:.3f}s "
            f"vs {row['bare_seconds_median']:.3f}s)"
        )
    d = result["dampen"]
    print(
        f"dampen {d['model']} ({d['parameters'] / 1e6:.1f} M params): "
        f"median {d['seconds_median'] * 1000:.0f} ms, max {d['seconds_max'] * 1000:.0f} ms"
    )
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
