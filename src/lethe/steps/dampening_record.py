"""`dampening.json`: what the unlearn step did to a candidate, written beside its model files.

Read by the evaluate step (plots of the dampening and of the selection's trials) and the register
step (α, λ, the importance method). Records written by older versions (no `method`, `cutoff` or
`selection`: a `search` block instead) read as they are: every field added since is optional, and
fields this version no longer writes are kept.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict

from lethe.errors import EvaluationError, LetheError
from lethe.forgetting.alpha import AlphaMethod
from lethe.storage.records import Record


class DampeningRecord(Record):
    """The dampening applied (α, λ, selected elements per tensor), how it was chosen, and its inputs."""

    FORMAT: ClassVar[str] = "lethe-dampening/1"
    WHAT: ClassVar[str] = "a lethe dampening report"
    ERROR: ClassVar[type[LetheError]] = EvaluationError
    JSON_INDENT: ClassVar[int] = 2  # the layout dampening.json always had
    # Older records carry fields this version no longer writes (e.g. `search`): kept, not refused.
    model_config = ConfigDict(extra="allow")

    method: str | None = None  # the importance method (absent before methods were a registry)
    # lethe.unlearning.DampeningReport.to_dict()
    alpha: float
    lam: float
    selected: dict[str, int]
    elements: dict[str, int]
    total_selected: int
    total_elements: int
    fraction: float
    # how the configuration was chosen (lethe.steps.unlearn.choose_dampening)
    alpha_method: AlphaMethod
    alpha_assd: float | None = None
    cutoff: str | None = None  # `all` or the first stage dampened (absent before cut-offs)
    dampened_parameters: list[str] | None = None  # None: every parameter
    target: dict[str, Any] = {}  # the forgetting target's final measurement
    target_met: bool | None = None
    selection: dict[str, Any] | None = None  # every trial of the search; None when nothing was tried
    # the forget set and the importances it was computed from
    scenario: str
    forget_class: int | None = None
    dataset: str
    forget_size: int
    retain_size: int
    importances: dict[str, Any] = {}
    forget_importances: dict[str, Any] = {}
    parent_fingerprint: str
    candidate_fingerprint: str
    seconds: float
