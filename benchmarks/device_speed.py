"""Speed on an accelerator: ResNet18 (CIFAR shape) on synthetic images, every headline ratio.

    python -m benchmarks.device_speed --device cuda [--train-samples 50000] [--out FILE]
    python -m benchmarks.device_speed --device cpu --quick     # seconds, to check the script

Speed does not depend on the pixels, so the data are random uint8 images of CIFAR-10's shape
(3×32×32, 10 classes) and CIFAR-10's training-set size by default. The parts, in the product's
semantics (per-sample importances, lethe's default; see lethe/steps/importance_pass.py):

- `importance_overhead`: the importance pass against a bare forward+backward over the same
  batches (batch-mean semantics, the paper's pass), over 20 and 200 batches (a pass has fixed
  costs; the headline is the longer pass), and the per-sample pass's throughput;
- `request`: one request of 100 forget samples with the D importances cached (load, Df pass,
  ASSD α, dampen a copy) against the same request recomputing D;
- `retrain`: one epoch of training from scratch on the retain set (bf16 autocast, as
  `lethe train` on CUDA) against the cached request. One epoch is a floor: every real recipe
  trains for many, so the speed-up of a recipe with E epochs is E times `retrain_speedup`;
- `scaling`: the D pass at a quarter, a half and all of |D| (time should be linear);
- `dampen` on ResNet18, and `evaluation` (MIA included) batched against batch size 1.

Writes the JSON (default benchmarks/results/speed-<device>.json) with the headline keys of
speed.json: importance_overhead_ratio, cached_speedup, retrain_speedup, eval_speedup.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.engine_speed import dampen_speed, importance_overhead
from benchmarks.speed import per_sample_cost
from benchmarks.workbench import command_line, machine, median_seconds, now, timed, write_json
from lethe.data import Normalization, SampleSet
from lethe.devices import default_device
from lethe.models import build_model
from lethe.models.training import train_classifier
from lethe.steps.importance_pass import importances_of
from lethe.unlearning import Importances, calibrate_alpha, dampen

ARCH, SHAPE, CLASSES = "resnet18-cifar", (3, 32, 32), 10


def synthetic(count: int, *, seed: int, split: str = "train") -> SampleSet:
    """Random CIFAR-shaped images with random labels (speed only)."""
    generator = torch.Generator().manual_seed(seed)
    return SampleSet(
        name="synthetic-cifar",
        split=split,
        ids=[f"synthetic-cifar/{split}/{i}" for i in range(count)],
        inputs=torch.randint(0, 256, (count, *SHAPE), dtype=torch.uint8, generator=generator),
        labels=torch.randint(0, CLASSES, (count,), generator=generator),
        num_classes=CLASSES,
        normalization=Normalization.uniform(SHAPE[0]),
    )


def request_and_scaling(
    model: torch.nn.Module, train: SampleSet, *, forget_size: int, repeats: int, device: torch.device
) -> dict[str, Any]:
    """The D pass at ¼, ½ and all of |D|; then one request with D cached against recomputing it."""
    points = []
    full = None
    for n in (len(train) // 4, len(train) // 2, len(train)):
        full, seconds = timed(
            lambda n=n: importances_of(
                model, train.subset(torch.arange(n)), device=str(device), progress=False
            ),
            device,
        )
        points.append({"samples": n, "seconds": seconds, "samples_per_s": n / seconds})
    x = np.array([p["samples"] for p in points], dtype=float)
    y = np.array([p["seconds"] for p in points], dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    d_seconds = points[-1]["seconds"]
    forget = train.subset(
        torch.randperm(len(train), generator=torch.Generator().manual_seed(1))[:forget_size]
    )

    with tempfile.TemporaryDirectory(prefix="lethe-bench-") as tmp:
        path = full.save(Path(tmp) / "full.safetensors")

        def forget_pass() -> Importances:
            return importances_of(model, forget, device=str(device), progress=False)

        def cached_request() -> torch.nn.Module:
            d = Importances.load(path)
            f = forget_pass()
            alpha = calibrate_alpha(d, f, n_full=len(train), n_forget=len(forget))
            candidate = copy.deepcopy(model)
            dampen(candidate, d, f, alpha=alpha)
            return candidate

        request = median_seconds(cached_request, repeats, device)
        parts = {
            "load_d_s": median_seconds(lambda: Importances.load(path), repeats, device)["median_s"],
            "forget_pass_s": median_seconds(forget_pass, repeats, device)["median_s"],
        }
    return {
        "request": {
            "train_samples": len(train),
            "forget_samples": len(forget),
            "d_pass_s": d_seconds,
            "cached_request_s": request["median_s"],
            "cached_request": request,
            "recomputed_request_s": d_seconds + request["median_s"],
            "cached_speedup": (d_seconds + request["median_s"]) / request["median_s"],
            "parts": parts,
        },
        "scaling": {
            "points": points,
            "fit": {"seconds_per_1000_samples": slope * 1000, "intercept_s": intercept},
        },
    }


def retrain_epoch(train: SampleSet, forget_size: int, device: torch.device, epochs: int) -> dict[str, Any]:
    """Training from scratch on the retain set (|D| − forget samples); the last epoch is the
    steady-state figure (the first includes kernel selection and warm-up)."""
    retain = train.subset(torch.arange(forget_size, len(train)))
    torch.manual_seed(0)
    model = build_model(ARCH, num_classes=CLASSES, in_channels=SHAPE[0])
    result = train_classifier(model, retain, None, epochs=epochs, device=device, progress=False)
    return {
        "retain_samples": len(retain),
        "epochs_measured": epochs,
        "epoch_seconds": [h["seconds"] for h in result.history],
        "epoch_s": result.history[-1]["seconds"],
        "batch_size": result.batch_size,
        "bf16_autocast": device.type == "cuda",
    }


def evaluation(
    model: torch.nn.Module, train: SampleSet, device: torch.device, bs1_samples: int
) -> dict[str, Any]:
    from benchmarks import eval_speed

    test = synthetic(len(train) // 5, seed=2, split="test")
    return eval_speed.run(model=model, train=train, test=test, device=device, bs1_samples=bs1_samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--train-samples", type=int, default=50_000, help="|D| (default CIFAR-10's 50,000)")
    parser.add_argument("--forget-samples", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--retrain-epochs", type=int, default=2, help="epochs timed (the last one is reported)"
    )
    parser.add_argument(
        "--d-pass-budget",
        type=float,
        default=240.0,
        help="seconds the D passes may take in all; |D| is cut to fit (default 240)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script on a CPU")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.quick:
        args.train_samples, args.forget_samples, args.repeats, args.retrain_epochs = 128, 8, 1, 1
    out = args.out or Path(__file__).resolve().parent / "results" / f"speed-{device.type}.json"

    def say(message: str) -> None:
        print(f"[{now()}] {message}", flush=True)

    train = synthetic(args.train_samples, seed=0)
    torch.manual_seed(0)
    model = build_model(ARCH, num_classes=CLASSES, in_channels=SHAPE[0]).to(device).eval()
    result: dict[str, Any] = {
        "machine": machine(device),
        "date": now(),
        "arch": ARCH,
        "input_shape": list(SHAPE),
        "data": "synthetic uint8 images (speed only)",
        "command": command_line("-m benchmarks.device_speed", argv if argv is not None else sys.argv[1:]),
    }
    say("importance pass vs bare forward+backward")
    # (batches, batch size): a pass has fixed costs (the parameters and the result copied between
    # device and host), so a short pass and one of D's length (391 batches of 128 for 50,000) differ.
    runs = [(2, 8)] if args.quick else [(20, 64), (20, 128), (200, 128)]
    result["importance_overhead"] = [
        importance_overhead(ARCH, SHAPE, batches, size, max(args.repeats, 3), device)
        for batches, size in runs
    ]
    say("per-sample pass throughput")
    result["per_sample"] = per_sample_cost(
        model, train.subset(torch.arange(min(4096, len(train) // 2))), batch_size=64, device=device
    )
    # The D passes (¼ + ½ + all of |D|) must fit the device session: shrink |D| if they would not.
    rate = result["per_sample"]["per_sample_samples_per_s"]
    affordable = max(int(rate * args.d_pass_budget / 1.75), 10 * args.forget_samples)
    if affordable < len(train):
        say(f"|D| cut from {len(train)} to {affordable} to fit --d-pass-budget {args.d_pass_budget:.0f} s")
        train = train.subset(torch.arange(affordable))
        result["train_samples_cut_to_fit"] = affordable
    say("D-pass scaling and the cached request")
    result.update(
        request_and_scaling(
            model, train, forget_size=args.forget_samples, repeats=args.repeats, device=device
        )
    )
    say("retraining from scratch")
    retrain = retrain_epoch(train, args.forget_samples, device, args.retrain_epochs)
    retrain["cached_request_s"] = result["request"]["cached_request_s"]
    retrain["speedup_one_epoch"] = retrain["epoch_s"] / retrain["cached_request_s"]
    result["retrain"] = retrain
    say("dampen")
    result["dampen"] = dampen_speed(args.repeats, device)
    say("evaluation")
    result["evaluation"] = evaluation(model, train, device, 50 if args.quick else 2000)
    result["headline"] = {
        # The longest pass: the closest to a real D pass.
        "importance_overhead_ratio": result["importance_overhead"][-1]["ratio"],
        "cached_speedup": result["request"]["cached_speedup"],
        "retrain_speedup": retrain["speedup_one_epoch"],
        "eval_speedup": result["evaluation"]["speedup"],
    }
    result.update(result["headline"])
    write_json(out, result)
    say(f"written: {out}")
    for key, value in result["headline"].items():
        print(f"  {key}: {value:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
