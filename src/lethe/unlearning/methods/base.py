"""What an importance method is, and the registry the engine, the steps and the CLI read.

An importance is the batch mean of a per-batch gradient term: I = (1/n) Σ_k term(∇θ objective(B_k)).
A method names its objective (what is differentiated), its term (how a gradient accumulates) and
whether its batches must carry labels; `compute_importances` does the rest for every method alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from lethe.errors import ImportancesError

#: The objective of one batch: (model outputs, labels or None) -> a scalar to differentiate.
Objective = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
Tensors = list[torch.Tensor]


@dataclass(frozen=True)
class GradientTerm:
    """How one gradient enters the sum: `of` returns new tensors; `add_into`, when given, adds the
    terms into the accumulators in place and may overwrite the gradients (the engine owns them)."""

    symbol: str
    of: Callable[[Tensors], Tensors]
    add_into: Callable[[Tensors, Tensors], None] | None = None
    #: term(x·y) = term(x)·term(y) element-wise: lets the per-sample pass sum a linear layer's terms
    #: as one product of the terms of its inputs and output signals (exact, see importances.py).
    multiplicative: bool = False

    def accumulate_(self, accumulated: Tensors, grads: Tensors) -> None:
        """accumulated += term(grads), without a second copy of every gradient where possible."""
        if self.add_into is not None:
            self.add_into(accumulated, grads)
        else:
            torch._foreach_add_(accumulated, self.of(grads))


def _absolute_into(accumulated: Tensors, grads: Tensors) -> None:
    # An expanded (stride-0) gradient cannot be overwritten element-wise: make it dense first.
    grads = [g if g.is_contiguous() else g.contiguous() for g in grads]
    torch._foreach_abs_(grads)
    torch._foreach_add_(accumulated, grads)


def _square_into(accumulated: Tensors, grads: Tensors) -> None:
    torch._foreach_addcmul_(accumulated, grads, grads)


ABSOLUTE = GradientTerm("|g|", torch._foreach_abs, _absolute_into, multiplicative=True)
SQUARE = GradientTerm("g²", lambda grads: torch._foreach_mul(grads, grads), _square_into,
                      multiplicative=True)


@dataclass(frozen=True)
class ImportanceMethod:
    """One importance method. `name` is what files, caches, cards and registry tags record."""

    name: str
    objective: Objective
    term: GradientTerm
    needs_labels: bool
    reference: str
    summary: str = ""

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip().lower() or "-" in self.name or "/" in self.name:
            # The name becomes part of cache file names (`<data>-<method>-b<batch>.safetensors`).
            raise ImportancesError(f"an importance method's name must be lower case, with no '-' or '/': "
                                   f"{self.name!r}")


_REGISTRY: dict[str, ImportanceMethod] = {}


def register_method(method: ImportanceMethod, *, replace: bool = False) -> ImportanceMethod:
    """Make `method` known by its name to the engine, the steps, the CLI and the pipelines."""
    if method.name in _REGISTRY and not replace and _REGISTRY[method.name] is not method:
        raise ImportancesError(f"an importance method named {method.name!r} is already registered")
    _REGISTRY[method.name] = method
    return method


def unregister_method(name: str) -> None:
    """Forget a registered method (for tests that register a toy one)."""
    _REGISTRY.pop(name, None)


def method_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_method(method: str | ImportanceMethod) -> ImportanceMethod:
    """The registered method of this name (or this registered method itself)."""
    name = method.name if isinstance(method, ImportanceMethod) else method
    found = _REGISTRY.get(name) if isinstance(name, str) else None
    if found is None:
        raise ImportancesError(f"unknown importance method {name!r}; expected one of {', '.join(_REGISTRY)}")
    return found


class RegisteredNames(Sequence[str]):
    """The registered names, read at each use: `name in METHODS` sees methods registered later."""

    def __getitem__(self, index):  # type: ignore[override]
        return method_names()[index]

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __iter__(self) -> Iterator[str]:
        return iter(method_names())

    def __contains__(self, name: object) -> bool:
        return name in _REGISTRY

    def __repr__(self) -> str:
        return repr(method_names())


METHODS = RegisteredNames()
