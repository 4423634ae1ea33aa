"""Engine speed, torch and lethe's engine only (benchmarks/speed.py and gpu_speed.py run it): the importance
pass against a bare forward+backward, dampening on ResNet18, and the D pass at ImageNet scale on paper.

Targets: importance pass ≤ 1.05× a bare forward+backward over the same batches (median of ≥ 5
interleaved runs); `dampen` on ResNet18 (11 M parameters) < 1 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from benchmarks.timing import interleaved, median_seconds, timed
from lethe.models import build_model
from lethe.unlearning import Importances, compute_importances, dampen, model_fingerprint

RESULTS = Path(__file__).resolve().parent / "results"
IMAGENET_TRAIN = 1_281_167
SCALE_DEVICES = (1, 8, 64)


def speed_parser(doc: str, device: str) -> argparse.ArgumentParser:
    """The options both speed scripts take (each adds its own sizes)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--device", default=device)
    parser.add_argument("--arch", default="resnet18-cifar", help="the model (default the papers' ResNet18)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script on a CPU")
    parser.add_argument("--out", type=Path, default=None)
    return parser


def bare_forward_backward(model: torch.nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """The floor: the same objective, forward + backward into .grad, nothing accumulated."""
    model.eval()
    for x in batches:
        model.zero_grad(set_to_none=True)
        model(x).pow(2).sum(dim=1).mean().backward()
    model.zero_grad(set_to_none=True)


def importance_overhead(arch: str, shape: tuple[int, int, int], n_batches: int, batch_size: int, repeats: int,
                        device: torch.device) -> dict:
    torch.manual_seed(0)
    model = build_model(arch, num_classes=10, in_channels=shape[0]).to(device)
    batches = [torch.randn(batch_size, *shape, device=device) for _ in range(n_batches)]
    bare_forward_backward(model, batches[:2])  # warm-up (allocator, kernels)
    compute_importances(model, batches[:2], progress=False)
    times = interleaved({"bare": lambda: bare_forward_backward(model, batches),
                         "ours": lambda: compute_importances(model, batches, progress=False)},
                        repeats, device, warm_up=False)
    bare, ours = times["bare_s"], times["ours_s"]
    return {"model": arch, "input_shape": list(shape), "batches": n_batches, "batch_size": batch_size,
            "repeats": repeats, "bare_seconds_median": bare, "importances_seconds_median": ours,
            "ratio": ours / bare}


def dampen_speed(repeats: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = build_model("resnet18-cifar", num_classes=10, in_channels=3).to(device)
    meta = dict(method="lfssd", batch_size=64, num_batches=1, num_samples=64,
                model_fingerprint=model_fingerprint(model))
    full = Importances({n: torch.rand_like(p) for n, p in model.named_parameters()}, **meta)
    forget = Importances({n: torch.rand_like(p) * 12 for n, p in model.named_parameters()}, **meta)
    times, fraction = [], 0.0
    for _ in range(repeats):
        candidate = copy.deepcopy(model)
        report, seconds = timed(lambda c=candidate: dampen(c, full, forget, alpha=10.0), device)
        times.append(seconds)
        fraction = report.fraction
    return {"model": "resnet18-cifar", "parameters": sum(p.numel() for p in model.parameters()),
            "seconds_median": statistics.median(times), "seconds_max": max(times),
            "fraction_dampened": fraction, "repeats": repeats}


def scale_on_paper(*, images: int, image_size: int, request_size: int, request_to_limit: float | None,
                   device: torch.device) -> dict[str, Any]:
    """The D pass over ImageNet's 1.28 M training images on ResNet50 at `image_size`, on 1, 8 and 64
    devices through the `importances` pipeline's ParallelFor, from the measured per-sample throughput
    (the pass is linear in |D|) plus the merge step's measured cost per shard (load it, add it); and the
    cached request that follows (load D, the Df pass, one dampening; the default selection × the
    measured `request_to_limit`)."""
    from torchvision.models import resnet50

    torch.manual_seed(0)
    model = resnet50(num_classes=1000).to(device).eval()
    generator = torch.Generator().manual_seed(0)

    def batch(n: int) -> list[torch.Tensor]:
        return [torch.randn(n, 3, image_size, image_size, generator=generator)]

    def per_sample(n: int) -> Importances:
        return compute_importances(model, batch(n), device=device, progress=False, per_sample=True)

    per_sample(1)  # warm-up
    shard, seconds = timed(lambda: per_sample(images), device)
    rate = images / seconds
    with tempfile.TemporaryDirectory(prefix="lethe-bench-scale-") as tmp:
        path = shard.save(Path(tmp) / "shard.safetensors")
        load = median_seconds(lambda: Importances.load(path), 2, device)["median_s"]
    merge = median_seconds(lambda: Importances.merge([shard, shard]), 2, device)["median_s"] / 2
    # A forget pass above the full one on about two thirds of the elements: dampening does real work.
    forget = Importances({n: 3 * v * torch.rand_like(v) for n, v in shard.items()}, **shard.metadata)
    damp = median_seconds(lambda: dampen(copy.deepcopy(model), shard, forget, alpha=1.0), 2,
                          device)["median_s"]
    per_shard = load + merge
    rows = [{"devices": k, "d_pass_s": IMAGENET_TRAIN / (k * rate) + (k * per_shard if k > 1 else 0.0)}
            for k in SCALE_DEVICES]
    assd_request = load + request_size / rate + damp
    return {"arch": "resnet50", "image_size": image_size, "images_measured": images, "samples_per_s": rate,
            "parameters": sum(p.numel() for p in model.parameters()), "images": IMAGENET_TRAIN,
            "merge_per_shard_s": per_shard, "load_d_s": load, "dampen_s": damp, "rows": rows,
            "request_size": request_size, "assd_request_s": assd_request,
            "default_request_s": None if request_to_limit is None
            else request_to_limit * (request_size / rate + damp) + load}
