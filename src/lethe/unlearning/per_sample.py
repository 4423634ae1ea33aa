"""The exact fast path of the per-sample pass: Σ_i term(g_i) from one batched forward and backward.

In eval mode sample i's objective depends on sample i alone, so one backward of the per-sample
objectives' output gradients gives every sample's signal δ_i at each layer's output at once. With
the layer's input a_i (forward hooks), the per-sample terms follow without per-sample backward
passes:

- Linear on (B, in):  g_i = δ_i a_iᵀ, and for a term with term(xy) = term(x)·term(y) (|g|, g²)

      Σ_i term(g_i) = term(Δ)ᵀ term(A)                              (one matmul)

  Bias: Σ_i term(δ_i).
- Linear on (B, …, in), Conv2d (weights shared across positions p): g_i = Σ_p δ_ip a_ipᵀ per
  sample (a batched matmul, or a grouped convolution), then the term: exact, not Σ_p term(·).
- BatchNorm in eval mode (an affine per channel): g_i(γ) = Σ_p δ_ip x̂_ip, g_i(β) = Σ_p δ_ip.

The parameters' own gradients are never computed (only the activations' are). A model with any
other parametrised layer, a shared parameter or a module called twice is not covered: the pass
then takes the torch.func reference path (`lethe.unlearning.importances`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import grad, vmap
from torch.nn.utils import parametrize

from lethe.unlearning.methods import ImportanceMethod


class NotExact(Exception):
    """This batch cannot take the exact hook path (found while running its forward): torch.func takes it."""


#: Modules whose per-sample terms `ExactPerSample` computes exactly (exact types: a subclass may
#: change the forward). Anything else with parameters sends the whole pass to torch.func.
EXACT_TYPES = (nn.Linear, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def covered_modules(model: nn.Module, params: list[torch.Tensor]) -> list[nn.Module] | None:
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
        if type(module) not in EXACT_TYPES or parametrize.is_parametrized(module) \
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


class ExactPerSample:
    """Adds Σ_i term(g_i) of each batch into the accumulators, by hooks (see the module docstring).

    `work_bytes`: the memory one per-sample product may fill (samples are taken in chunks that fit).
    """

    def __init__(self, modules: list[nn.Module], params: list[torch.Tensor], method: ImportanceMethod,
                 work_bytes: int) -> None:
        self.modules = modules
        self.slot = {id(p): k for k, p in enumerate(params)}
        self.method = method
        self.work_bytes = work_bytes
        self.inputs: dict[int, tuple[torch.Tensor, int]] = {}
        self.accumulated: list[torch.Tensor] = []

    @classmethod
    def of(cls, model: nn.Module, params: list[torch.Tensor], method: ImportanceMethod,
           work_bytes: int) -> ExactPerSample | None:
        """The hook engine for `model`, or None when the model is not covered exactly."""
        modules = covered_modules(model, params)
        return None if modules is None else cls(modules, params, method, work_bytes)

    def term(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.method.term.of([tensor])[0]

    def add_batch(self, model: nn.Module, accumulated: list[torch.Tensor], inputs: torch.Tensor,
                  labels: torch.Tensor | None) -> None:
        """accumulated += Σ_i term(g_i) over this batch; raises NotExact before adding anything."""
        if not inputs.is_floating_point():
            raise NotExact
        self.accumulated, self.inputs = accumulated, {}
        x = inputs.detach().requires_grad_(True)  # the graph's root: the parameters need no gradient
        handles = [m.register_forward_hook(self._forward_hook) for m in self.modules]
        try:
            outputs = model(x)
            if outputs.shape[0] != x.shape[0] \
                    or any(t._version != v for t, v in self.inputs.values()):
                raise NotExact  # a recorded input was overwritten in place later in the forward
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
            raise NotExact  # called twice (shared weights), off the input's path, or not on a batch
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
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            self._add_batchnorm_terms(module, weight, bias, x, delta)
        elif isinstance(module, nn.Conv2d):
            if bias is not None:
                bias += self.term(delta.sum((2, 3))).sum(0)
            self._add_conv_weight_terms(module, weight, x, delta)
        else:
            self._add_linear_terms(weight, bias, x, delta)

    def _add_batchnorm_terms(self, module: nn.modules.batchnorm._BatchNorm, weight: torch.Tensor | None,
                             bias: torch.Tensor | None, x: torch.Tensor, delta: torch.Tensor) -> None:
        batch, channels = x.shape[0], (1, -1) + (1,) * (x.dim() - 2)
        centred = (x - module.running_mean.view(channels)).reshape(batch, x.shape[1], -1)  # (B, C, positions)
        signal = delta.reshape(batch, x.shape[1], -1)
        if weight is not None:  # Σ_p δ_p x̂_p = (Σ_p δ_p (x_p − μ)) / sqrt(σ² + ε), per sample and channel
            dots = (signal * centred).sum(2) * torch.rsqrt(module.running_var + module.eps)
            weight += self.term(dots).sum(0)
        if bias is not None:
            bias += self.term(signal.sum(2)).sum(0)

    def _add_linear_terms(self, weight: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor,
                          delta: torch.Tensor) -> None:
        # Positions are every dimension between the batch and the features.
        batch = x.shape[0]
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

    def _chunks(self, batch: int, per_sample_elements: int, element_size: int) -> list[tuple[int, int]]:
        """Sample ranges whose per-sample gradients (and terms) fit the working memory."""
        step = max(1, self.work_bytes // (2 * per_sample_elements * element_size))
        return [(start, min(start + step, batch)) for start in range(0, batch, step)]
