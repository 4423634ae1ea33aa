"""The `Step` row: what a pipeline step needs on a cluster, declared once, above its component.

    @step(stores=("storage",), gpu=True, resources=DATA_PASS, cache=False, retry=True,
          display_name="importances of D (cached)")
    @dsl.component(base_image=IMAGE, install_kfp_package=False)
    def compute_importances(...): ...

`components.platform.configure(task)` reads the row of the task's component; `step_rows()` finds
every row by importing each module of this package (no hand-kept list), for the compile tests and
for checking the step names a deployment's variables give. The decorator returns the component with
one change: its command runs lethe's task entry (`components.task_entry`), which runs KFP's executor
(and, when asked, first drops the credentials the task is not granted). KFP serialises only the
function's own source (from its `def`), so the row itself never reaches the compiled component.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from components.task_entry import use_task_entry
from lethe.errors import PipelineError

#: What a step may touch: the erasure ledger (requests, their states), the subject key (the HMAC that
#: hashes subject ids: needed to match a subject map or a subject to the ledger's hashes), the model
#: registry (MLflow) and the object store (every `s3://` read or write: the published data set and
#: subject map, the importances cache, reference models, artifacts, certificates, run outcomes).
#: A step's credentials follow from its stores (components.platform.STORE_SECRETS).
Store = Literal["ledger", "subject_key", "registry", "storage"]
STORES: tuple[Store, ...] = ("ledger", "subject_key", "registry", "storage")

#: CPU and memory of a step that holds a model and passes over data (the tasks' defaults otherwise:
#: lethe.config.DEFAULT_TASK_RESOURCES).
DATA_PASS: Mapping[str, str] = {"cpu_request": "2", "cpu_limit": "4", "memory_request": "4Gi",
                                "memory_limit": "16Gi"}


@dataclass(frozen=True)
class Step:
    """One pipeline step (a KFP component) and what it needs.

    `stores`: what it reads or writes besides its artifacts; `gpu`: it gets the deployment's GPUs
    (LETHE_GPU_STEPS overrides); `resources`: CPU and memory on top of every task's
    (LETHE_STEP_RESOURCES overrides); `cache`: KFP may reuse an earlier result (pure steps only);
    `retry`: a failed task is run again (pure steps, and side effects keyed by content or run);
    `display_name`: what the KFP UI shows."""

    name: str  # the component's name, e.g. "compute-importances"
    component: Any = field(repr=False, compare=False)
    stores: tuple[Store, ...]
    gpu: bool
    resources: Mapping[str, str]
    cache: bool
    retry: bool
    display_name: str


_ROWS: dict[str, Step] = {}


def step(*, stores: tuple[Store, ...] = (), gpu: bool = False, resources: Mapping[str, str] | None = None,
         cache: bool, retry: bool, display_name: str) -> Callable[[Any], Any]:
    """Declare the row of the component below (applied above `@dsl.component`)."""
    unknown = sorted(set(stores) - set(STORES))
    if unknown:
        raise PipelineError(f"unknown store(s) {', '.join(unknown)}; expected {', '.join(STORES)}")

    def declare(component: Any) -> Any:
        name = component.component_spec.name
        if name in _ROWS and _ROWS[name].component is not component:
            raise PipelineError(f"two components are called {name}")
        _ROWS[name] = Step(name=name, component=component, stores=tuple(stores), gpu=gpu,
                           resources=dict(resources or {}), cache=cache, retry=retry,
                           display_name=display_name)
        return use_task_entry(component)

    return declare


def row_of(name: str) -> Step:
    """The row of step `name` (its component's module is imported when a pipeline uses it)."""
    try:
        return _ROWS[name]
    except KeyError:
        raise PipelineError(f"step {name} has no row: declare it with @step above its @dsl.component "
                            "(components/step.py)") from None


@cache
def _import_component_modules() -> None:
    import components

    for module in pkgutil.iter_modules(components.__path__, prefix="components."):
        importlib.import_module(module.name)


def step_rows() -> dict[str, Step]:
    """Every step, by name: each module of the components package is imported (once), which declares
    its rows; rows declared elsewhere since are included."""
    _import_component_modules()
    return dict(sorted(_ROWS.items()))
