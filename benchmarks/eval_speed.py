"""Evaluation speed: 70,000 samples through `convnet`, membership inference included, batched
against batch size 1, side by side on the same machine.

    python -m benchmarks.eval_speed [--model DIR] [--bs1-samples 2000] [--threads N] [--device cpu]

Uses Fashion-MNIST (60,000 train + 10,000 test = 70,000) when it is installed, else random
28x28 images of the same shape; a model directory when given, else a fresh `convnet` (speed does
not depend on the weights). Batch size 1 runs over `--bs1-samples` samples and is scaled to the
full count (its per-sample cost is flat). Prints one JSON object. `run()` is what
benchmarks.run calls.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch
from torch import nn

from lethe.data import Normalization, SampleSet, concat, load_dataset
from lethe.errors import LetheError
from lethe.evaluation import accuracy, membership_inference, predict_logits
from lethe.evaluation.evaluator import DEFAULT_BATCH_SIZE
from lethe.models import build_model, load_model

FULL_BS1_SAMPLES, QUICK_BS1_SAMPLES = 2_000, 300


def fashion_or_random(count: int = 70_000) -> tuple[SampleSet, SampleSet, str]:
    """Fashion-MNIST's train and test splits, or random images of the same shape and count."""
    try:
        return load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test"), "fashion-mnist"
    except LetheError:
        gen = torch.Generator().manual_seed(0)
        data = SampleSet(
            name="random",
            split="train",
            ids=[str(i) for i in range(count)],
            inputs=torch.randint(0, 256, (count, 1, 28, 28), dtype=torch.uint8, generator=gen),
            labels=torch.randint(0, 10, (count,), generator=gen),
            num_classes=10,
            normalization=Normalization.uniform(1),
        )
        cut = count * 6 // 7
        return data.subset(torch.arange(cut)), data.subset(torch.arange(cut, count)), "random"


def run(
    *,
    model: nn.Module,
    train: SampleSet,
    test: SampleSet,
    device: torch.device | str = "cpu",
    quick: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    bs1_samples: int | None = None,
) -> dict[str, Any]:
    """Time evaluation of train + test (forward passes, accuracy, both MIA feature sets) batched,
    and forward passes at batch size 1 on a slice, scaled to the same count."""
    data = concat([train, test])
    labels = data.labels
    started, cpu_started = time.perf_counter(), time.process_time()
    logits = predict_logits(model, data.batches(batch_size, with_labels=False), device=device, progress=False)
    forward_s = time.perf_counter() - started
    # MIA as the evaluate step runs it: train as members, test as non-members, class 0 of the
    # training samples as the forget set; entropy alone, then entropy + loss.
    n_train = len(train)
    forget = (labels[:n_train] == 0).nonzero().flatten()
    retain = (labels[:n_train] != 0).nonzero().flatten()
    held_out = torch.arange(n_train, len(data))
    for with_labels in (False, True):
        mia_labels = (labels[retain], labels[held_out], labels[forget]) if with_labels else None
        membership_inference(logits[retain], logits[held_out], logits[forget], seed=0, labels=mia_labels)
    acc = accuracy(logits, labels)
    batched_s = time.perf_counter() - started
    batched_cpu_s = time.process_time() - cpu_started

    count = min(bs1_samples or (QUICK_BS1_SAMPLES if quick else FULL_BS1_SAMPLES), len(data))
    subset = data.subset(torch.arange(count))
    started = time.perf_counter()
    predict_logits(model, subset.batches(1, with_labels=False), device=device, progress=False)
    bs1_forward_s = (time.perf_counter() - started) / count * len(data)
    # The MIA costs the same either way; the speed-up compares whole evaluations.
    bs1_total_s = bs1_forward_s + (batched_s - forward_s)
    return {
        "samples": len(data),
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "batched_forward_s": round(forward_s, 2),
        "batched_total_with_mia_s": round(batched_s, 2),
        # CPU time of this process: robust when other jobs share the cores (wall time is not).
        "batched_total_with_mia_cpu_s": round(batched_cpu_s, 2),
        "bs1_measured_samples": count,
        "bs1_forward_s_scaled": round(bs1_forward_s, 1),
        "bs1_total_with_mia_s_scaled": round(bs1_total_s, 1),
        "speedup_forward": round(bs1_forward_s / forward_s, 1),
        "speedup": round(bs1_total_s / batched_s, 1),
        "accuracy": round(acc, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model directory (default: a fresh convnet)")
    parser.add_argument("--bs1-samples", type=int, default=FULL_BS1_SAMPLES)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    train, test, source = fashion_or_random()
    if args.model:
        model, _ = load_model(args.model)
    else:
        torch.manual_seed(0)
        model = build_model("convnet", num_classes=10, in_channels=1).eval()
    result = run(
        model=model,
        train=train,
        test=test,
        device=args.device,
        batch_size=args.batch_size,
        bs1_samples=args.bs1_samples,
    )
    print(json.dumps({"data": source, "model": args.model or "convnet (fresh weights)", **result}, indent=2))


if __name__ == "__main__":
    main()
