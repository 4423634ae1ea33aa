"""GPU speed: the torch-only ratios on ResNet18, one run of a few minutes, into results/speed-cuda.json.

    python -m benchmarks.gpu_speed --device cuda            # one GPU, well under 10 minutes
    python -m benchmarks.gpu_speed --device cpu --quick --arch convnet   # checks the script on a CPU

Torch and lethe's engine only (lethe.unlearning, lethe.models, the forgetting target and the batched
forward); no mlflow, kfp, evidently, boto3 or sklearn import (a device image may lack them; the run
checks it). lethe's engine itself needs numpy, safetensors, tqdm and pyyaml: where the image lacks them,
`pip install --target .gpu-deps safetensors tqdm pyyaml` here, carry `.gpu-deps`, set PYTHONPATH=.gpu-deps.
Each ratio's two sides are measured in one process, interleaved, median of `--repeats` rounds, the
spread stated (the lowest and highest per-round ratio). Data: synthetic CIFAR-shaped images whose class
is a bright patch (learnable in one epoch, so forgetting a class means something); speed does not
depend on the pixels. "Request": forgetting class 0 with D cached, the class scenario's search (every
cut-off, α bisected) against a fixed α (ASSD's); Evidently, kfp.local and retraining stay CPU-only.
"""

from __future__ import annotations

import copy
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.engine_speed import RESULTS, bare_forward_backward, speed_parser
from benchmarks.targets import check_targets
from benchmarks.timing import interleaved, median_seconds, now, timed, write_headline
from lethe.evaluation.forward import predict_logits
from lethe.evaluation.targets import ClassTarget
from lethe.models import build_model
from lethe.models.stages import forward_stages
from lethe.unlearning import Importances, calibrate_alpha, compute_importances, dampen
from lethe.unlearning.group_size import per_sample_group_size
from lethe.unlearning.selection import select_dampening

NOT_ON_THE_DEVICE = ("mlflow", "kfp", "evidently", "boto3", "sklearn")
SHAPE, CLASSES, BATCH = (3, 32, 32), 10, 128


def patterned(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise plus a bright 8×8 patch whose place is the class."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, CLASSES, (count,), generator=generator)
    images = 0.5 * torch.randn(count, *SHAPE, generator=generator)
    for k in range(CLASSES):
        row, col = divmod(k, 4)
        images[labels == k, :, 8 * row:8 * row + 8, 8 * col:8 * col + 8] += 2.0
    return images, labels


def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> None:
    """One epoch of AdamW (speed needs a model that has learnt something, not a recipe)."""
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for start in range(0, len(images), BATCH):
        x, y = images[start:start + BATCH].to(device), labels[start:start + BATCH].to(device)
        optimiser.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
    model.eval()


def run(device: torch.device, samples: int, repeats: int, arch: str = "resnet18-cifar") -> dict[str, Any]:
    torch.manual_seed(0)
    images, labels = patterned(samples, seed=0)
    model = build_model(arch, num_classes=CLASSES, in_channels=SHAPE[0]).to(device)
    train(model, images, labels, device)
    on_device = [x.to(device) for x in images.split(BATCH)]
    group = per_sample_group_size(model, SHAPE, device=device)
    grouped = [x.to(device) for x in images.split(group)]
    result: dict[str, Any] = {"per_sample_group": group}

    result["importance_overhead"] = interleaved({
        "importances": lambda: compute_importances(model, on_device[:20], progress=False),
        "bare": lambda: bare_forward_backward(model, on_device[:20])}, repeats, device)
    # About 4,096 samples (a quarter of D at most), the same ones on both sides.
    some = max(1, min(len(grouped), 4096 // group, samples // (4 * group)))
    bare_batches = on_device[:max(1, some * group // BATCH)]
    result["per_sample"] = interleaved({
        "per_sample": lambda: compute_importances(model, grouped[:some], per_sample=True, progress=False),
        "bare": lambda: bare_forward_backward(model, bare_batches)}, repeats, device)

    forget_rows, retain_rows = (labels == 0).nonzero().flatten(), (labels != 0).nonzero().flatten()
    forget_groups = [x.to(device) for x in images[forget_rows].split(group)]
    full, full_s = timed(lambda: compute_importances(model, grouped, per_sample=True, progress=False), device)
    forget_batches = list(images[forget_rows].split(256))
    retain_batches = list(images[retain_rows[:min(2000, samples // 4)]].split(256))
    target = ClassTarget(model, forget_batches, retain_batches, forget_class=0, device=device)
    high = min(1000.0, samples / len(forget_rows))
    chosen: dict[str, Any] = {}

    with tempfile.TemporaryDirectory(prefix="lethe-gpu-speed-") as tmp:
        path = full.save(Path(tmp) / "full.safetensors")

        def request(search: bool) -> nn.Module:
            loaded = Importances.load(path)  # read on the host, as the unlearn step reads it
            d = Importances({n: v.to(device) for n, v in loaded.items()}, **loaded.metadata)
            f = compute_importances(model, forget_groups, per_sample=True, progress=False)
            alpha, parameters = calibrate_alpha(d, f, n_full=samples, n_forget=len(forget_rows)), None
            if search:
                selection = select_dampening(model, d, f, target, stages=forward_stages,
                                             low=min(1.0, high / 2), high=high)
                if selection.found:
                    alpha, parameters = selection.alpha, selection.parameters
                chosen.update(alpha=alpha, cutoff=selection.cutoff, trials=len(selection.trials),
                              forward_trials=selection.forward_trials)
            candidate = copy.deepcopy(model)
            dampen(candidate, d, f, alpha=alpha, parameters=parameters)
            chosen["candidate"], chosen["parameters"] = candidate, parameters
            return candidate

        cached = interleaved({"cached_request": lambda: request(False), "default_request":
                              lambda: request(True)}, max(1, repeats // 2), device)
        forget = compute_importances(model, forget_groups, per_sample=True, progress=False)
        candidate, parameters = chosen.pop("candidate"), chosen.pop("parameters")
        floor = {
            "forget_pass": lambda: compute_importances(model, forget_groups, per_sample=True, progress=False),
            "one_dampening": lambda: dampen(copy.deepcopy(model), full, forget, alpha=chosen["alpha"],
                                            parameters=parameters),
            "target_measurement": lambda: target.measure(candidate)}
        parts = {name: median_seconds(fn, repeats, device, warm_up=False)["median_s"]
                 for name, fn in floor.items()}
    limit = sum(parts.values())
    result["request"] = {"train_samples": samples, "forget_samples": len(forget_rows), "d_pass_s": full_s,
                         **cached, "floor_parts_s": parts, "limit_s": limit, "chosen": chosen,
                         "cached_speedup": (full_s + cached["cached_request_s"]) / cached["cached_request_s"],
                         "request_to_limit": cached["default_request_s"] / limit}

    cpu_batches = list(images[:min(8192, samples)].split(256))
    device_batches = [x.to(device) for x in cpu_batches]

    def bare_forward() -> None:
        with torch.no_grad():
            for m in (model, candidate):
                for x in device_batches:
                    m(x)

    def product_forward() -> None:
        for m in (model, candidate):
            predict_logits(m, cpu_batches, device=device, progress=False)

    result["evaluation_forward"] = interleaved({"product": product_forward, "bare": bare_forward},
                                               repeats, device)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = speed_parser(__doc__, "cuda")
    parser.add_argument("--samples", type=int, default=20_000, help="|D| (synthetic, CIFAR-shaped)")
    parser.add_argument("--repeats", type=int, default=5)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    started = time.perf_counter()
    measured = run(device, 160 if args.quick else args.samples, 1 if args.quick else args.repeats, args.arch)
    m, request = measured, measured["request"]
    headline = {"importance_overhead_ratio": m["importance_overhead"]["ratio"],
                "per_sample_ratio": m["per_sample"]["ratio"], "cached_speedup": request["cached_speedup"],
                "request_to_limit": request["request_to_limit"],
                "eval_forward_efficiency": 1 / measured["evaluation_forward"]["ratio"]}
    loaded = sorted({name.split(".")[0] for name in sys.modules} & set(NOT_ON_THE_DEVICE))
    result = {"machine": {"device": device.type, "gpu": torch.cuda.get_device_name(device)
                          if device.type == "cuda" else None, "torch": torch.__version__,
                          "platform": platform.platform()}, "date": now(), "arch": args.arch,
              "command": " ".join(["python -m benchmarks.gpu_speed", *argv]),
              "quick": args.quick, **measured, "headline": headline,
              "targets": [*(t for t in check_targets(headline, device.type) if t["key"] in headline),
                          {"key": "eval_forward_efficiency", "target": "≥ 0.8",
                           "what": "bare forward / the product's batched forward (evaluation)",
                           "value": headline["eval_forward_efficiency"],
                           "met": headline["eval_forward_efficiency"] >= 0.8}],
              "imports_not_on_the_device": loaded,
              "run_seconds": time.perf_counter() - started}
    write_headline(args.out or RESULTS / "speed-cuda.json", result)
    return 1 if loaded else 0


if __name__ == "__main__":
    sys.exit(main())
