"""Parameter importances for any registered method (`lethe.unlearning.methods`).

For a classifier f in eval mode, batches B_1..B_n of a fixed batch size and a method's objective
and gradient term:  I = (1/n) Σ_k term(∇θ objective(f(B_k), y_k)), e.g.

    LFSSD:  I = (1/n) Σ_k |∇θ mean_{x∈B_k} ||f(x)||²₂|      (raw logits, no labels)
    SSD:    I = (1/n) Σ_k (∇θ mean_{(x,y)∈B_k} CE(f(x), y))²

Foster, Schoepf & Brintrup, arXiv 2402.19308 (LFSSD) and arXiv 2308.07707 (SSD).

`per_sample=True` computes the same sums at batch size 1 (one term per sample), vectorised with
torch.func. Why it matters: a batch of the full data mixes classes, whose gradients partly cancel
in the batch mean, while a forget batch of one class does not; at b > 1 this inflates I_f/I_D on
parameters every class uses (BatchNorm scales, early convolutions), and dampening them costs
accuracy everywhere. At b = 1 nothing cancels (measured on Fashion-MNIST, see benchmarks/).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn.utils import parametrize
from tqdm.auto import tqdm

from lethe.errors import ImportancesError
from lethe.unlearning.fingerprint import (
    fingerprint_of,
    known_fingerprint,
    parameter_snapshot,
    remember_fingerprint,
)
from lethe.unlearning.methods import DEFAULT_METHOD, METHODS, ImportanceMethod, get_method

# METHODS: kept here for older imports.
__all__ = ["METHODS", "Importances", "compute_importances", "per_sample_group_size"]


class Importances(Mapping[str, torch.Tensor]):
    """Averaged importances by parameter name, read-only, with the metadata that binds them.

    The values are the mean over batches of the per-batch term; `num_batches` lets shards
    computed on disjoint parts of the data be merged exactly.
    """

    def __init__(
        self,
        values: Mapping[str, torch.Tensor],
        *,
        method: str,
        batch_size: int,
        num_batches: int,
        num_samples: int,
        model_fingerprint: str,
    ) -> None:
        method = get_method(method).name  # refuses names no registered method has
        if num_batches < 1 or batch_size < 1 or num_samples < 1:
            raise ImportancesError("importances need at least one batch of at least one sample")
        self._values = MappingProxyType(dict(values))
        self.method = method
        self.batch_size = int(batch_size)
        self.num_batches = int(num_batches)
        self.num_samples = int(num_samples)
        self.model_fingerprint = model_fingerprint

    # Mapping protocol (read-only view; tensors are handed out as they are stored).
    def __getitem__(self, name: str) -> torch.Tensor:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return (
            f"Importances(method={self.method!r}, batch_size={self.batch_size}, "
            f"num_batches={self.num_batches}, num_samples={self.num_samples}, "
            f"tensors={len(self)}, model={self.model_fingerprint[:12]})"
        )

    @property
    def metadata(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "batch_size": self.batch_size,
            "num_batches": self.num_batches,
            "num_samples": self.num_samples,
            "model_fingerprint": self.model_fingerprint,
        }

    def check_compatible(self, other: Importances) -> None:
        """Refuse to combine importances that do not measure the same thing."""
        for key in ("method", "batch_size", "model_fingerprint"):
            mine, theirs = getattr(self, key), getattr(other, key)
            if mine != theirs:
                raise ImportancesError(
                    f"importances differ in {key}: {_short(mine)} vs {_short(theirs)}; "
                    "they cannot be merged or compared"
                )
        if set(self) != set(other):
            raise ImportancesError("importances cover different parameters")

    def check_finite(self) -> None:
        values = [value for value in self.values() if value.numel()]
        # One fused reduction and one device sync (not one per tensor): the max-norm is NaN or Inf
        # exactly when some element is.
        if len({(value.device, value.dtype) for value in values}) == 1 and values[0].is_floating_point() \
                and bool(torch.isfinite(torch.stack(torch._foreach_norm(values, float("inf")))).all()):
            return
        bad = [name for name, value in self.items() if not bool(torch.isfinite(value).all())]
        if bad:
            raise ImportancesError(f"importances hold NaN or Inf in {', '.join(bad[:3])}")

    def to(self, device: str | torch.device) -> Importances:
        """The same importances with every tensor on `device` (self when they are all there already)."""
        device = torch.device(device)
        if all(_on(value, device) for value in self.values()):
            return self
        return Importances({name: value.to(device) for name, value in self.items()}, **self.metadata)

    @classmethod
    def merge(cls, shards: Sequence[Importances]) -> Importances:
        """Combine shards computed on disjoint parts of the data: a batch-weighted mean.

        Equal to one pass over all the data (to float rounding) when the shard boundaries fall
        on batch boundaries, since each shard's value is its per-batch sum over its batch count.
        """
        if not shards:
            raise ImportancesError("nothing to merge")
        first = shards[0]
        for shard in shards[1:]:
            first.check_compatible(shard)
        names = list(first)
        total_batches = sum(shard.num_batches for shard in shards)
        merged = torch._foreach_mul([first[n].double() for n in names], float(first.num_batches))
        for shard in shards[1:]:
            torch._foreach_add_(merged, [shard[n].double() for n in names], alpha=float(shard.num_batches))
        torch._foreach_div_(merged, float(total_batches))
        return cls(
            {n: m.to(first[n].dtype) for n, m in zip(names, merged, strict=True)},
            method=first.method,
            batch_size=first.batch_size,
            num_batches=total_batches,
            num_samples=sum(shard.num_samples for shard in shards),
            model_fingerprint=first.model_fingerprint,
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {name: value.detach().to("cpu").contiguous() for name, value in self.items()}
        save_file(tensors, str(path), metadata={"lethe": json.dumps(self.metadata)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> Importances:
        try:
            with safe_open(str(path), framework="pt") as handle:
                raw = (handle.metadata() or {}).get("lethe")
                values = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        except FileNotFoundError as exc:
            raise ImportancesError(f"no importances file at {path}") from exc
        except Exception as exc:  # safetensors raises its own error types for corrupt files
            raise ImportancesError(f"cannot read importances from {path}: {exc}") from exc
        if raw is None:
            raise ImportancesError(f"{path} holds tensors but no lethe importances metadata")
        return cls(values, **_checked_metadata(raw, path))


_METADATA_TYPES = {"method": str, "batch_size": int, "num_batches": int, "num_samples": int,
                   "model_fingerprint": str}


def _checked_metadata(raw: str, path: str | Path) -> dict[str, Any]:
    """The keyword arguments in an importances file's metadata, refused unless exactly the expected ones."""
    try:
        metadata = json.loads(raw)
    except ValueError:
        metadata = None
    if not isinstance(metadata, dict):
        raise ImportancesError(f"{path} has malformed importances metadata (not a JSON object)")
    if set(metadata) != set(_METADATA_TYPES):
        raise ImportancesError(f"{path} has malformed importances metadata: keys {sorted(metadata)}, "
                               f"expected {sorted(_METADATA_TYPES)}")
    for key, kind in _METADATA_TYPES.items():
        value = metadata[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ImportancesError(f"{path} has malformed importances metadata: {key} is {_short(value)}")
    return metadata


def _on(tensor: torch.Tensor, device: torch.device) -> bool:
    return tensor.device.type == device.type and (device.index is None or tensor.device.index == device.index)


def _short(value: object) -> str:
    text = str(value)
    return text[:12] if len(text) == 64 else text


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
    """One gradient per sample, stacked on dim 0: the batch-of-one objective, vmapped."""
    weights = {name: param.detach() for name, param in zip(names, params, strict=True)}
    buffers = dict(model.named_buffers())

    def sample_objective(weights, x, y):
        outputs = functional_call(model, (weights, buffers), (x.unsqueeze(0),))
        return method.objective(outputs, None if y is None else y.unsqueeze(0))

    in_dims = (None, 0, None if labels is None else 0)
    grads = vmap(grad(sample_objective), in_dims=in_dims)(weights, inputs, labels)
    return [grads[name] for name in names]


class _NotExact(Exception):
    """This batch cannot take the exact hook path (found while running its forward): torch.func takes it."""


#: Modules whose per-sample terms `_ExactPerSample` computes exactly (exact types: a subclass may
#: change the forward). Anything else with parameters sends the whole pass to torch.func.
_EXACT_TYPES = (nn.Linear, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
#: Working memory of one per-sample product (samples are taken in chunks that fit it).
CPU_WORK_BYTES = 256 << 20


def _work_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(free // 8, 64 << 20)
    return CPU_WORK_BYTES


def _covered_modules(model: nn.Module, params: list[torch.Tensor]) -> list[nn.Module] | None:
    """The modules owning every parameter, if the hook path covers each of them exactly; else None."""
    owners: dict[int, int] = {}
    modules = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and (
                not module.track_running_stats or module.running_mean is None):
            return None  # batch statistics in eval mode: samples are not independent
        direct = list(module.named_parameters(recurse=False))
        if not direct:
            continue
        if type(module) not in _EXACT_TYPES or parametrize.is_parametrized(module) \
                or any(name not in ("weight", "bias") for name, _ in direct):
            return None
        if isinstance(module, nn.Conv2d) and (module.groups != 1 or module.padding_mode != "zeros"
                                              or isinstance(module.padding, str)):
            return None
        for _, param in direct:
            owners[id(param)] = owners.get(id(param), 0) + 1
        modules.append(module)
    if any(n != 1 for n in owners.values()) or set(owners) != {id(p) for p in params}:
        return None  # a parameter shared by two modules, or one no covered module owns
    return modules


class _ExactPerSample:
    """Σ_i term(g_i) over a batch from one batched forward and one backward, exact where it applies.

    In eval mode sample i's objective depends on sample i alone, so a backward of the per-sample
    objectives' output gradients gives every sample's signal δ_i at each layer's output at once.
    With the layer's input a_i (forward hooks), per-sample terms follow without per-sample
    backward passes:

    - Linear on (B, in): g_i = δ_i a_iᵀ and, for a term with term(xy) = term(x)·term(y) (|g|, g²),
      Σ_i term(g_i) = term(Δ)ᵀ term(A): one matmul. Bias: Σ_i term(δ_i).
    - Linear on (B, …, in), Conv2d (weights shared across positions): g_i = Σ_p δ_ip a_ipᵀ per
      sample (a batched matmul over unfolded inputs), then the term: exact, not the sum of |·| over
      positions.
    - BatchNorm in eval mode (an affine per channel): g_i(γ) = Σ_p δ_ip x̂_ip, g_i(β) = Σ_p δ_ip.

    The parameters' own gradients are never computed (only the activations' are).
    """

    def __init__(self, modules: list[nn.Module], params: list[torch.Tensor], method: ImportanceMethod,
                 device: torch.device) -> None:
        self.modules = modules
        self.slot = {id(p): k for k, p in enumerate(params)}
        self.method = method
        self.work_bytes = _work_bytes(device)
        self.inputs: dict[int, tuple[torch.Tensor, int]] = {}
        self.accumulated: list[torch.Tensor] = []

    @classmethod
    def of(cls, model: nn.Module, params: list[torch.Tensor], method: ImportanceMethod,
           device: torch.device) -> _ExactPerSample | None:
        modules = _covered_modules(model, params)
        return None if modules is None else cls(modules, params, method, device)

    def term(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.method.term.of([tensor])[0]

    def add_batch(self, model: nn.Module, accumulated: list[torch.Tensor], inputs: torch.Tensor,
                  labels: torch.Tensor | None) -> None:
        """accumulated += Σ_i term(g_i) over this batch; raises _NotExact before adding anything."""
        if not inputs.is_floating_point():
            raise _NotExact
        self.accumulated, self.inputs = accumulated, {}
        x = inputs.detach().requires_grad_(True)  # the graph's root: the parameters need no gradient
        handles = [m.register_forward_hook(self._forward_hook) for m in self.modules]
        try:
            outputs = model(x)
            if outputs.shape[0] != x.shape[0] \
                    or any(t._version != v for t, v in self.inputs.values()):
                raise _NotExact  # a recorded input was overwritten in place later in the forward
            output_grads = self._output_grads(outputs.detach(), labels)
            torch.autograd.grad(outputs, x, output_grads)  # the δ hooks accumulate as it runs
        finally:
            for handle in handles:
                handle.remove()
            self.inputs, self.accumulated = {}, []

    def _output_grads(self, outputs: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """∂ objective(f(x_i) as a batch of one) / ∂ f(x_i), for every i."""
        objective = self.method.objective
        if labels is None:
            return vmap(grad(lambda o: objective(o.unsqueeze(0), None)))(outputs)
        return vmap(grad(lambda o, y: objective(o.unsqueeze(0), y.unsqueeze(0))))(outputs, labels)

    def _forward_hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if id(module) in self.inputs or x is None or not isinstance(output, torch.Tensor) \
                or not output.requires_grad or x.dim() < 2 \
                or (isinstance(module, nn.Conv2d) and x.dim() != 4):
            raise _NotExact  # called twice (shared weights), off the input's path, or not on a batch
        self.inputs[id(module)] = (x, x._version)
        # Registered before any in-place op on the output (ReLU(inplace), `out += identity`), so it
        # receives the gradient with respect to this module's output itself.
        output.register_hook(lambda delta: self._add_terms(module, delta))

    @torch.no_grad()
    def _add_terms(self, module: nn.Module, delta: torch.Tensor) -> None:
        x = self.inputs.pop(id(module))[0].detach()
        delta = delta.detach()
        weight = self.accumulated[self.slot[id(module.weight)]] if module.weight is not None else None
        bias = self.accumulated[self.slot[id(module.bias)]] if module.bias is not None else None
        batch = x.shape[0]
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            channels = (1, -1) + (1,) * (x.dim() - 2)
            # (B, C, positions)
            centred = (x - module.running_mean.view(channels)).reshape(batch, x.shape[1], -1)
            signal = delta.reshape(batch, x.shape[1], -1)
            if weight is not None:  # Σ_p δ_p x̂_p = (Σ_p δ_p (x_p − μ)) / sqrt(σ² + ε), per sample and channel
                dots = (signal * centred).sum(2) * torch.rsqrt(module.running_var + module.eps)
                weight += self.term(dots).sum(0)
            if bias is not None:
                bias += self.term(signal.sum(2)).sum(0)
            return
        if isinstance(module, nn.Conv2d):
            if bias is not None:
                bias += self.term(delta.sum((2, 3))).sum(0)
            self._add_conv_weight_terms(module, weight, x, delta)
            return
        # Linear: positions are every dimension between the batch and the features.
        columns = x.reshape(batch, -1, x.shape[-1]).transpose(1, 2)  # (B, in, positions)
        signal = delta.reshape(batch, -1, delta.shape[-1]).transpose(1, 2)  # (B, out, positions)
        if bias is not None:
            bias += self.term(signal.sum(2)).sum(0)
        if signal.shape[2] == 1 and self.method.term.multiplicative:
            # One position per sample: Σ_i term(δ_i a_iᵀ) = term(Δ)ᵀ term(A), one matmul.
            weight.addmm_(self.term(signal[:, :, 0]).t(), self.term(columns[:, :, 0]))
            return
        for start, stop in self._chunks(batch, weight.numel(), delta.element_size()):
            per_sample = torch.bmm(signal[start:stop], columns[start:stop].transpose(1, 2))
            weight += self.term(per_sample).sum(0)

    def _chunks(self, batch: int, per_sample_elements: int, element_size: int) -> list[tuple[int, int]]:
        """Sample ranges whose per-sample gradients (and terms) fit the working memory."""
        step = max(1, self.work_bytes // (2 * per_sample_elements * element_size))
        return [(start, min(start + step, batch)) for start in range(0, batch, step)]

    def _add_conv_weight_terms(self, module: nn.Conv2d, weight: torch.Tensor, x: torch.Tensor,
                               delta: torch.Tensor) -> None:
        # Each sample's weight gradient at once: the batch folded into the channels of one sample,
        # one group per sample (a grouped convolution's weight gradient; no unfolded copy of x).
        out_channels, in_channels, *kernel = weight.shape
        for start, stop in self._chunks(x.shape[0], weight.numel(), delta.element_size()):
            n = stop - start
            per_sample = nn.grad.conv2d_weight(
                x[start:stop].reshape(1, n * in_channels, *x.shape[2:]),
                (n * out_channels, in_channels, *kernel),
                delta[start:stop].reshape(1, n * out_channels, *delta.shape[2:]),
                module.stride, module.padding, module.dilation, groups=n)
            weight += self.term(per_sample.view(n, *weight.shape)).sum(0)


#: Samples per group of the per-sample pass on a CPU. Measured (convnet, 28×28, one core, μs per
#: sample): 32: 507, 64: 474, 128: 462, 256: 520, 512: 645: larger groups leave the caches.
CPU_GROUP = 128
#: The most samples per group on a GPU, and the share of its free memory a group may fill.
GPU_MAX_GROUP = 4096
GPU_MEMORY_SHARE = 0.5
#: The memory a group may fill on a CPU.
CPU_GROUP_BYTES = 2 << 30


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
            model(torch.zeros(1, *sample_shape, device=params[0].device, dtype=params[0].dtype))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    per_sample = 3 * activations
    if _covered_modules(model, params) is None:
        per_sample += 3 * sum(p.numel() * p.element_size() for p in params)
    if target.type == "cuda":
        budget, most = int(torch.cuda.mem_get_info(target)[0] * GPU_MEMORY_SHARE), GPU_MAX_GROUP
    else:
        budget, most = CPU_GROUP_BYTES, CPU_GROUP
    fits = max(1, min(most, budget // max(per_sample, 1)))
    return 1 << (fits.bit_length() - 1)


def compute_importances(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    method: str | ImportanceMethod = DEFAULT_METHOD,
    device: str | torch.device | None = None,
    progress: bool = True,
    batch_size: int | None = None,
    per_sample: bool = False,
) -> Importances:
    """Importances of every named parameter over `batches` (see the module docstring).

    `batch_size` defaults to the DataLoader's, or to the first batch's size. With
    `per_sample=True` the batches only group the work: the result is the reference semantics at
    batch size 1 (recorded as such). `method`: a registered method or its name. The model's
    values, `requires_grad` flags, training mode and device are restored afterwards.
    """
    method = get_method(method)
    named = list(model.named_parameters())
    if not named:
        raise ImportancesError("the model has no parameters")
    names = [name for name, _ in named]
    params = [param for _, param in named]
    original_device = params[0].device
    target = torch.device(device) if device is not None else original_device
    # Hashing ResNet18's 45 MB takes ~70 ms, a fixed cost that would dominate a short GPU pass: a
    # model version's fingerprint is remembered, and a new one is hashed on a thread while the pass
    # runs (the parameters do not change meanwhile).
    fingerprint = known_fingerprint(model)
    if fingerprint is None:
        hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lethe-fingerprint")
        hashed = hashing.submit(fingerprint_of, parameter_snapshot(model))
        hashing.shutdown(wait=False)
    exact = _ExactPerSample.of(model, params, method, target) if per_sample else None
    flags = [param.requires_grad for param in params]
    was_training = model.training
    batch_size = 1 if per_sample else batch_size or getattr(batches, "batch_size", None)

    total = len(batches) if hasattr(batches, "__len__") else None
    accumulated: list[torch.Tensor] | None = None
    num_batches = num_samples = 0
    try:
        model.to(target)
        model.eval()
        for param in params:
            # The hook path needs no parameter gradients (torch.func takes detached weights).
            param.requires_grad_(not per_sample)
        for batch in tqdm(batches, total=total, desc=f"{method.name} importances", disable=not progress,
                          unit="batch", leave=False):
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
    torch._foreach_div_(accumulated, float(num_batches))
    if fingerprint is None:
        fingerprint = hashed.result()
        remember_fingerprint(model, fingerprint)  # as the parameters are now, back where they were
    # Left on the device of the pass: the rest of a request (α, dampening, selection) runs there.
    values = {name: value.detach() for name, value in zip(names, accumulated, strict=True)}
    result = Importances(values, method=method.name, batch_size=batch_size, num_batches=num_batches,
                         num_samples=num_samples, model_fingerprint=fingerprint)
    result.check_finite()  # a model that outputs NaN/Inf yields importances nobody may use
    return result
