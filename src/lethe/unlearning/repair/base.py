"""What a repair method is, its compute budget, and the registry the steps and the CLI read.

Dampening (LFSSD) is the first rung of the ladder: label-free and cheap, but it cannot remove label
memorisation and removes only part of input memorisation. A repair is the second rung: a short,
budgeted training procedure on the dampened candidate (damage then repair, NegGrad+, a retain
fine-tune, ...). Its budget is counted in sample-steps (one forward and backward pass of one sample)
and stated as a share of the root version's own training recipe (epochs × training samples): the
NeurIPS 2023 unlearning challenge capped unlearning at 20% of a retraining's time.

Pure torch: a method sees batch sources (callables that yield normalised `(x, y)` batches), never a
data set, a file or a registry; `lethe.steps` builds the sources from the version's data.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from lethe.errors import RepairError

#: A batch source: `source(batch_size, seed)` yields `(x, y)` batches (normalised, on the device the
#: repair runs on), each sample once, in an order drawn from `seed`.
BatchSource = Callable[[int, int], Iterable[tuple[torch.Tensor, torch.Tensor]]]


@dataclass(frozen=True)
class RepairBudget:
    """At most `sample_steps` forward+backward passes of one sample each."""

    sample_steps: int

    def __post_init__(self) -> None:
        if self.sample_steps < 1:
            raise RepairError(f"a repair budget must allow at least one sample-step, not {self.sample_steps}")

    @classmethod
    def share_of_recipe(cls, share: float, *, training_samples: int, epochs: int) -> RepairBudget:
        """`share` of the recipe's sample-steps (its epochs over its training samples)."""
        if not (math.isfinite(share) and share > 0):
            raise RepairError(f"a repair budget's share of the recipe must be a positive number, not {share}")
        if training_samples < 1 or epochs < 1:
            raise RepairError("the recipe names no training samples or epochs to take a share of")
        return cls(max(1, int(share * training_samples * epochs)))


class BudgetExhausted(Exception):
    """Raised by `BudgetMeter.charge` inside a method; `run_repair` turns it into `stopped="budget"`."""


class BudgetMeter:
    """Counts the sample-steps a method spends. `charge(n)` before a batch's backward pass: when the
    batch would take the total over the budget, nothing is charged and `BudgetExhausted` is raised."""

    def __init__(self, budget: RepairBudget) -> None:
        self.budget = budget
        self.spent = 0

    @property
    def left(self) -> int:
        return self.budget.sample_steps - self.spent

    def affords(self, samples: int) -> bool:
        return samples <= self.left

    def charge(self, samples: int) -> None:
        if not self.affords(samples):
            raise BudgetExhausted
        self.spent += samples


@dataclass(frozen=True)
class RepairData:
    """The samples a repair may read: the forget set and the retain set (with their training labels)."""

    forget: BatchSource
    retain: BatchSource
    num_forget: int
    num_retain: int
    num_classes: int


@dataclass(frozen=True)
class RepairSettings:
    """What the step decides for every method alike."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None  # e.g. functools.partial(tqdm, ...)


class RepairFunction(Protocol):
    def __call__(self, parent: nn.Module, candidate: nn.Module, data: RepairData, meter: BudgetMeter,
                 settings: RepairSettings) -> dict[str, Any]:
        """Change `candidate` in place (train mode as it needs; `run_repair` puts it back in eval mode);
        `parent` (eval mode, never changed) is the model before erasure. Charge `meter` before every
        backward pass. Returns what the method wants recorded (epochs, losses per step, ...)."""
        ...


@dataclass(frozen=True)
class RepairMethod:
    """One repair method. `name` is what policies, tags and certificates record."""

    name: str
    repair: RepairFunction
    needs_labels: bool
    #: Its default budget: this share of the root recipe's sample-steps.
    default_share: float
    #: The gate's refusals it is meant to address (`still_flagged`: the membership test still finds the
    #: person; `accuracy_drop`: dampening cost too much of the rest).
    addresses: tuple[str, ...]
    reference: str
    summary: str = ""

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip().lower() or "/" in self.name:
            raise RepairError(f"a repair method's name must be lower case, with no '/': {self.name!r}")
        if not (math.isfinite(self.default_share) and 0 < self.default_share <= 1):
            raise RepairError(f"repair method {self.name}: its default share of the recipe must be in (0, 1]")


@dataclass
class RepairReport:
    """What one repair did: its method, budget and spending, time, and how it ended."""

    method: str
    budget: int
    sample_steps: int
    seconds: float
    #: "done" (the method finished within its budget) or "budget" (it stopped where the next batch
    #: would have exceeded the budget).
    stopped: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def share_of_budget(self) -> float:
        return self.sample_steps / self.budget

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_repair(method: RepairMethod, parent: nn.Module, candidate: nn.Module, data: RepairData,
               budget: RepairBudget, settings: RepairSettings | None = None) -> RepairReport:
    """Run `method` on `candidate` (in place) within `budget`; the candidate ends in eval mode."""
    settings = settings or RepairSettings()
    if data.num_retain < 1:
        raise RepairError(f"repair {method.name} needs retain samples, and there are none")
    meter = BudgetMeter(budget)
    parent.eval()
    started = time.perf_counter()
    stopped, details = "done", {}
    try:
        details = dict(method.repair(parent, candidate, data, meter, settings) or {})
    except BudgetExhausted:
        stopped = "budget"
    finally:
        candidate.eval()
    if not all(bool(torch.isfinite(p).all()) for p in candidate.parameters()):
        raise RepairError(f"repair {method.name} left non-finite weights; the candidate is unusable")
    return RepairReport(method=method.name, budget=budget.sample_steps, sample_steps=meter.spent,
                        seconds=time.perf_counter() - started, stopped=stopped, details=details)


Batch = tuple[torch.Tensor, torch.Tensor]


def batches_of(source: BatchSource, batch_size: int, seed: int) -> Iterator[Batch]:
    """Endless batches from a source: a new seeded order per pass."""
    epoch = 0
    while True:
        empty = True
        for batch in source(batch_size, seed * 100_003 + epoch):
            empty = False
            yield batch
        if empty:
            raise RepairError("a repair's batch source yielded no batch")
        epoch += 1


_REGISTRY: dict[str, RepairMethod] = {}


def register_repair(method: RepairMethod, *, replace: bool = False) -> RepairMethod:
    """Make `method` known by its name to the steps, the policy and the CLI."""
    if method.name in _REGISTRY and not replace and _REGISTRY[method.name] is not method:
        raise RepairError(f"a repair method named {method.name!r} is already registered")
    _REGISTRY[method.name] = method
    return method


def unregister_repair(name: str) -> None:
    """Forget a registered method (for tests that register a toy one)."""
    _REGISTRY.pop(name, None)


def repair_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_repair(name: str) -> RepairMethod:
    found = _REGISTRY.get(name) if isinstance(name, str) else None
    if found is None:
        known = ", ".join(_REGISTRY) or "(none)"
        raise RepairError(f"unknown repair method {name!r}; expected one of {known}")
    return found
