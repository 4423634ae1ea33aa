"""Training a classifier on a SampleSet, and the fine-tune baseline (k epochs on the retain set).

AdamW with a one-cycle schedule for training from scratch; a cosine decay for fine-tuning.
bf16 autocast on CUDA. The model ends in eval mode on the device it came from.

The optimizer is always AdamW and its weight decay is always passed explicitly: `DEFAULT_WEIGHT_DECAY`
(5e-4) unless the caller says otherwise. Every model lethe trained before the weight decay was recorded
in train.json (`lethe train`, the retrain remedy, the reference models) trained with it, so a recipe
without the field means 5e-4 (`lethe.audit.recipe`), never AdamW's own default of 1e-2.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from lethe.data.sampleset import SampleSet
from lethe.devices import default_device
from lethe.errors import DataError, ModelError

#: What a from-scratch training uses (and what train.json records as `optimizer` and `schedule`).
OPTIMIZER = "adamw"
SCHEDULE = "onecycle"
#: AdamW's decoupled weight decay when none is given (lethe's default since the first version).
DEFAULT_WEIGHT_DECAY = 5e-4


@dataclass
class TrainResult:
    """What a training (or fine-tuning) run did; `history` has one entry per epoch."""

    test_accuracy: float | None
    train_accuracy: float
    epochs: int
    seconds: float
    n_train: int
    batch_size: int
    lr: float
    seed: int
    device: str
    weight_decay: float = DEFAULT_WEIGHT_DECAY
    history: list[dict[str, float | None]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_fit(model: nn.Module, samples: SampleSet) -> None:
    if samples.labels is None:
        raise DataError(f"{samples.name}/{samples.split} has no labels: cannot train on it")
    if len(samples) == 0:
        raise DataError(f"{samples.name}/{samples.split} is empty: nothing to train on")
    spec = getattr(model, "lethe_spec", None)
    if isinstance(spec, dict):
        if spec.get("in_channels") != samples.in_channels:
            raise ModelError(f"the model takes {spec.get('in_channels')}-channel images, "
                             f"{samples.name} has {samples.in_channels}")
        if spec.get("num_classes") != samples.num_classes:
            raise ModelError(f"the model has {spec.get('num_classes')} classes, "
                             f"{samples.name} has {samples.num_classes}")


@torch.no_grad()
def predict(model: nn.Module, samples: SampleSet, *, batch_size: int = 512,
            device: str | torch.device | None = None) -> torch.Tensor:
    """Predicted class of every sample (CPU int64 tensor), in `samples` order."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        predictions = [model(x).argmax(dim=1).cpu()
                       for x in samples.batches(batch_size, with_labels=False, device=device)]
    finally:
        model.train(was_training)
    return torch.cat(predictions) if predictions else torch.zeros(0, dtype=torch.int64)


def model_accuracy(model: nn.Module, samples: SampleSet, *, batch_size: int = 512,
                   device: str | torch.device | None = None) -> float:
    """Top-1 accuracy of `model` on `samples` (0..1); `lethe.evaluation.accuracy` scores given logits."""
    if samples.labels is None or len(samples) == 0:
        raise DataError(f"{samples.name}/{samples.split} has no labelled samples to score")
    return float((predict(model, samples, batch_size=batch_size, device=device) == samples.labels)
                 .float().mean())


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random horizontal flip and random crop after zero padding (the usual CIFAR augmentation)."""
    batch, _, height, width = x.shape
    flips = torch.rand(batch, generator=generator) < 0.5
    x = torch.where(flips.to(x.device).view(-1, 1, 1, 1), x.flip(3), x)
    padded = nn.functional.pad(x, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (batch, 2), generator=generator).tolist()
    return torch.stack([padded[i, :, dy:dy + height, dx:dx + width] for i, (dy, dx) in enumerate(offsets)])


def _fit(model: nn.Module, train: SampleSet, test: SampleSet | None, *, epochs: int, batch_size: int,
         lr: float, weight_decay: float, seed: int, device: str | torch.device | None, progress: bool,
         schedule: str, augment: bool, desc: str) -> TrainResult:
    _check_fit(model, train)
    if epochs < 1:
        raise ModelError(f"epochs must be at least 1, got {epochs}")
    if lr <= 0 or batch_size < 1:
        raise ModelError(f"learning rate and batch size must be positive, got {lr} and {batch_size}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ModelError(f"weight decay must be a finite number >= 0, got {weight_decay}")
    original_device = next(model.parameters()).device
    target = torch.device(device if device is not None else default_device())
    use_amp = target.type == "cuda"
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model.to(target)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    # drop_last: a last batch of one sample breaks BatchNorm in training mode.
    drop_last = len(train) > batch_size
    steps_per_epoch = len(train.batches(batch_size, drop_last=drop_last))
    total_steps = epochs * steps_per_epoch
    if schedule == "onecycle":
        scheduler: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, total_steps=total_steps, pct_start=0.15)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)))
    loss_fn = nn.CrossEntropyLoss()
    history: list[dict[str, float | None]] = []
    started = time.perf_counter()
    correct = seen = 0
    epoch_bar = tqdm(range(epochs), desc=desc, unit="epoch", disable=not progress)
    try:
        for epoch in epoch_bar:
            model.train()
            epoch_started = time.perf_counter()
            total_loss, correct, seen = 0.0, 0, 0
            batches = train.batches(batch_size, shuffle=True, seed=seed * 100_003 + epoch,
                                    drop_last=drop_last, device=target)
            for x, y in tqdm(batches, desc=f"epoch {epoch + 1}", unit="batch", leave=False,
                             disable=not progress):
                if augment:
                    x = augment_batch(x, generator)
                with torch.autocast(device_type=target.type, dtype=torch.bfloat16, enabled=use_amp):
                    logits = model(x)
                    loss = loss_fn(logits.float(), y)
                if not torch.isfinite(loss):
                    raise ModelError(f"training diverged (loss {loss.item()}) in epoch {epoch + 1}; "
                                     "try a smaller learning rate")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total_loss += float(loss.detach()) * len(y)
                correct += int((logits.argmax(dim=1) == y).sum())
                seen += len(y)
            test_accuracy = model_accuracy(model, test, device=target) if test is not None else None
            entry = {"epoch": epoch + 1, "loss": total_loss / seen, "train_accuracy": correct / seen,
                     "test_accuracy": test_accuracy, "seconds": time.perf_counter() - epoch_started}
            history.append(entry)
            epoch_bar.set_postfix({k: round(v, 4) for k, v in entry.items()
                                   if k in ("loss", "test_accuracy") and v is not None})
    finally:
        epoch_bar.close()
        model.eval()
        model.to(original_device)
    return TrainResult(
        test_accuracy=history[-1]["test_accuracy"],
        train_accuracy=correct / max(seen, 1),
        epochs=epochs,
        seconds=time.perf_counter() - started,
        n_train=len(train),
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=str(target),
        weight_decay=weight_decay,
        history=history,
    )


def train_classifier(
    model: nn.Module,
    train: SampleSet,
    test: SampleSet | None,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    augment: bool = False,
) -> TrainResult:
    """Train `model` in place from its current weights; test accuracy measured after each epoch.

    `device` defaults to CUDA when available. `augment` adds random flips and crops (for CIFAR).
    """
    return _fit(model, train, test, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                seed=seed, device=device, progress=progress, schedule="onecycle", augment=augment,
                desc="train")


def finetune(
    model: nn.Module,
    retain: SampleSet,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    test: SampleSet | None = None,
    augment: bool = False,
) -> TrainResult:
    """The fine-tune baseline: `epochs` more epochs on the retain set only, the learning rate
    decaying from `lr` to zero (in place)."""
    return _fit(model, retain, test, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                seed=seed, device=device, progress=progress, schedule="cosine", augment=augment,
                desc="finetune")
