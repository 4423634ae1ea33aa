"""The importance pass, for any registered method (`lethe.unlearning.methods`).

For a classifier f in eval mode, batches B_1..B_n of a fixed batch size and a method's objective
and gradient term:  I = (1/n) Σ_k term(∇θ objective(f(B_k), y_k)), e.g.

    LFSSD:  I = (1/n) Σ_k |∇θ mean_{x∈B_k} ||f(x)||²₂|      (raw logits, no labels)
    SSD:    I = (1/n) Σ_k (∇θ mean_{(x,y)∈B_k} CE(f(x), y))²

Foster, Schoepf & Brintrup, arXiv 2402.19308 (LFSSD) and arXiv 2308.07707 (SSD).

`per_sample=True` computes the same sums at batch size 1 (one term per sample, n = N). Why it
matters: a batch of the full data mixes classes, whose gradients partly cancel in the batch mean,
while a forget batch of one class does not; at b > 1 this inflates I_f/I_D on parameters every
class uses (BatchNorm scales, early convolutions), and dampening them costs accuracy everywhere.
At b = 1 nothing cancels (measured on Fashion-MNIST, see benchmarks/). Two ways compute it: the
exact hook path (`lethe.unlearning.per_sample`), and, for any model it does not cover, the
reference below (torch.func: a vmap of the batch-of-one objective's gradient).

The other roles live beside: the `Importances` container and file format
(`lethe.unlearning.importance_set`), the group size (`lethe.unlearning.group_size`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from lethe.errors import ImportancesError
from lethe.unlearning.fingerprint import (
    fingerprint_of,
    known_fingerprint,
    parameter_snapshot,
    remember_fingerprint,
)
from lethe.unlearning.group_size import per_sample_group_size, work_bytes
from lethe.unlearning.importance_set import Importances
from lethe.unlearning.methods import DEFAULT_METHOD, METHODS, ImportanceMethod, get_method
from lethe.unlearning.per_sample import ExactPerSample, NotExact

# METHODS, Importances, per_sample_group_size: kept here for older imports.
__all__ = ["METHODS", "Importances", "Progress", "compute_importances", "per_sample_group_size"]

#: Wraps the batches to show progress (e.g. `functools.partial(tqdm.tqdm, unit="batch")`): the
#: engine itself imports no display library.
Progress = Callable[[Iterable[Any]], Iterable[Any]]
#: Working memory of one per-sample product on a CPU (samples are taken in chunks that fit it).
CPU_WORK_BYTES = 256 << 20
# The hook engine under the names the tests patch to force one path or the other.
_ExactPerSample = ExactPerSample
_NotExact = NotExact


def _split_batch(batch: Any, method: ImportanceMethod) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(batch, torch.Tensor):
        inputs, labels = batch, None
    elif isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        inputs = batch[0]
        labels = batch[1] if len(batch) > 1 and isinstance(batch[1], torch.Tensor) else None
    else:
        raise ImportancesError("each batch must be an input tensor or a tuple (inputs, labels, ...)")
    if not method.needs_labels:
        return inputs, None  # nothing to move to the device
    if labels is None:
        raise ImportancesError(f"{method.name.upper()} importances need labels: "
                               "batches must be (inputs, labels)")
    return inputs, labels


def _per_sample_grads(
    model: nn.Module,
    names: list[str],
    params: list[torch.Tensor],
    inputs: torch.Tensor,
    labels: torch.Tensor | None,
    method: ImportanceMethod,
) -> list[torch.Tensor]:
    """g_i = ∇θ objective(f(x_i), y_i) for every sample i, stacked on dim 0 (the reference path)."""
    weights = {name: param.detach() for name, param in zip(names, params, strict=True)}
    buffers = dict(model.named_buffers())

    def sample_objective(weights, x, y):
        outputs = functional_call(model, (weights, buffers), (x.unsqueeze(0),))
        return method.objective(outputs, None if y is None else y.unsqueeze(0))

    in_dims = (None, 0, None if labels is None else 0)
    grads = vmap(grad(sample_objective), in_dims=in_dims)(weights, inputs, labels)
    return [grads[name] for name in names]


def _fingerprint_later(model: nn.Module) -> Callable[[], str]:
    """The model's fingerprint, remembered or hashed on a thread while the pass runs.

    Hashing ResNet18's 45 MB takes ~70 ms, a fixed cost that would dominate a short GPU pass; the
    parameters do not change during the pass."""
    known = known_fingerprint(model)
    if known is not None:
        return lambda: known
    hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lethe-fingerprint")
    hashed = hashing.submit(fingerprint_of, parameter_snapshot(model))
    hashing.shutdown(wait=False)

    def result() -> str:
        fingerprint = hashed.result()
        remember_fingerprint(model, fingerprint)  # as the parameters are now, back where they were
        return fingerprint
    return result


def compute_importances(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    method: str | ImportanceMethod = DEFAULT_METHOD,
    device: str | torch.device | None = None,
    progress: Progress | bool | None = None,
    batch_size: int | None = None,
    per_sample: bool = False,
) -> Importances:
    """Importances of every named parameter over `batches` (see the module docstring).

    `batch_size` defaults to the DataLoader's, or to the first batch's size. With
    `per_sample=True` the batches only group the work: the result is the reference semantics at
    batch size 1 (recorded as such). `method`: a registered method or its name. `progress`: a
    `Progress` wrapper of the batches, or False/None for none. The model's values,
    `requires_grad` flags, training mode and device are restored afterwards.
    """
    if progress is True:
        raise TypeError("progress must wrap the batches (e.g. functools.partial(tqdm.tqdm)), not True")
    method = get_method(method)
    named = list(model.named_parameters())
    if not named:
        raise ImportancesError("the model has no parameters")
    names = [name for name, _ in named]
    params = [param for _, param in named]
    original_device = params[0].device
    target = torch.device(device) if device is not None else original_device
    fingerprint = _fingerprint_later(model)
    # The exact hook path where it covers the model (else None: torch.func). Positional arguments:
    # tests replace `of` to force the reference path.
    exact = _ExactPerSample.of(model, params, method, work_bytes(target, CPU_WORK_BYTES)) \
        if per_sample else None
    flags = [param.requires_grad for param in params]
    was_training = model.training
    batch_size = 1 if per_sample else batch_size or getattr(batches, "batch_size", None)

    accumulated: list[torch.Tensor] | None = None  # Σ_k term(g_k), one tensor per parameter
    num_batches = num_samples = 0
    try:
        model.to(target)
        model.eval()
        for param in params:
            # The per-sample paths need no parameter gradients (torch.func takes detached weights).
            param.requires_grad_(not per_sample)
        for batch in (progress(batches) if progress else batches):
            inputs, labels = _split_batch(batch, method)
            inputs = inputs.to(target, non_blocking=True)
            labels = labels.to(target, non_blocking=True) if labels is not None else None
            batch_size = batch_size or int(inputs.shape[0])
            if accumulated is None:
                accumulated = [torch.zeros_like(p, memory_format=torch.contiguous_format) for p in params]
            if per_sample:
                if exact is not None:
                    try:
                        exact.add_batch(model, accumulated, inputs, labels)
                    except _NotExact:
                        exact = None  # this batch and the rest through torch.func
                if exact is None:
                    grads = _per_sample_grads(model, names, params, inputs, labels, method)
                    # Σ_i term(g_i) over the samples of this batch, each a batch of one.
                    torch._foreach_add_(accumulated, [t.sum(dim=0) for t in method.term.of(grads)])
                num_batches += int(inputs.shape[0])
            else:
                objective = method.objective(model(inputs), labels)
                grads = torch.autograd.grad(objective, params, allow_unused=True, materialize_grads=True)
                # In place where the term allows: the gradients are ours, and not allocating a second
                # copy of every gradient per batch keeps the pass at the cost of a bare forward+backward.
                method.term.accumulate_(accumulated, list(grads))
                num_batches += 1
            num_samples += int(inputs.shape[0])
    finally:
        for param, flag in zip(params, flags, strict=True):
            param.requires_grad_(flag)
        model.train(was_training)
        model.to(original_device)
    if accumulated is None:
        raise ImportancesError("no batches: importances need at least one sample")
    torch._foreach_div_(accumulated, float(num_batches))  # I = (1/n) Σ_k term(g_k)
    # Left on the device of the pass: the rest of a request (α, dampening, selection) runs there.
    values = {name: value.detach() for name, value in zip(names, accumulated, strict=True)}
    result = Importances(values, method=method.name, batch_size=batch_size, num_batches=num_batches,
                         num_samples=num_samples, model_fingerprint=fingerprint())
    result.check_finite()  # a model that outputs NaN/Inf yields importances nobody may use
    return result
