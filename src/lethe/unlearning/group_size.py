"""How much memory the per-sample pass may fill at once: samples per group, and one product's chunk.

Memory, not semantics: with `per_sample=True` the result is the same for any group size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lethe.unlearning.per_sample import covered_modules

#: Samples per group of the per-sample pass on a CPU. Measured (convnet, 28×28, one core, μs per
#: sample): 32: 507, 64: 474, 128: 462, 256: 520, 512: 645: larger groups leave the caches.
CPU_GROUP = 128
#: The most samples per group on a GPU, and the share of its free memory a group may fill.
GPU_MAX_GROUP = 4096
GPU_MEMORY_SHARE = 0.5
#: The memory a group may fill on a CPU.
CPU_GROUP_BYTES = 2 << 30


def work_bytes(device: torch.device, cpu_bytes: int) -> int:
    """The memory one per-sample product may fill on `device`: an eighth of a GPU's free memory
    (at least 64 MiB), `cpu_bytes` on a CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(free // 8, 64 << 20)
    return cpu_bytes


def per_sample_group_size(model: nn.Module, sample_shape: Sequence[int], *,
                          device: str | torch.device | None = None) -> int:
    """How many samples the per-sample pass should take together on `device` (memory, not semantics).

    Per sample: about three times the forward's activations (kept for the backward, and their
    gradients), plus three copies of the parameters where torch.func computes per-sample gradients
    of every parameter at once. On a GPU the group fills half the free memory (`mem_get_info`), up
    to GPU_MAX_GROUP; on a CPU at most CPU_GROUP_BYTES, up to CPU_GROUP. A power of two.
    """
    params = list(model.parameters())
    target = torch.device(device) if device is not None else params[0].device
    per_sample = 3 * _activation_bytes(model, sample_shape, params[0])
    if covered_modules(model, params) is None:
        per_sample += 3 * sum(p.numel() * p.element_size() for p in params)
    if target.type == "cuda":
        budget, most = int(torch.cuda.mem_get_info(target)[0] * GPU_MEMORY_SHARE), GPU_MAX_GROUP
    else:
        budget, most = CPU_GROUP_BYTES, CPU_GROUP
    fits = max(1, min(most, budget // max(per_sample, 1)))
    return 1 << (fits.bit_length() - 1)


def _activation_bytes(model: nn.Module, sample_shape: Sequence[int], like: torch.Tensor) -> int:
    """The bytes of every leaf module's output for one sample (one eval-mode forward of zeros)."""
    activations = 0

    def count(_module: nn.Module, _args: tuple, output: Any) -> None:
        nonlocal activations
        if isinstance(output, torch.Tensor):
            activations += output.numel() * output.element_size()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *sample_shape, device=like.device, dtype=like.dtype))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return activations
