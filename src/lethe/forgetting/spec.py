"""What one run forgets, frozen when the run starts: the `forget` artifact between pipeline steps.

Written by `collect_requests` (scheduled run) or `prepare_request` (on demand), read by every
later step, so they all work on the same samples and the same parent model even if the ledger or
the registry move meanwhile. It holds sample ids and request ids, never a subject id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from lethe.errors import LetheError, PipelineError
from lethe.forgetting.scenarios import SCENARIOS
from lethe.storage.records import Record

FORGET_FILE = "forget.json"


class ForgetSpec(Record):
    """The forget set of a run: a class, or sample ids (each request's, for a scheduled run)."""

    FORMAT: ClassVar[str] = "lethe-forget-spec/1"
    WHAT: ClassVar[str] = "a lethe forget set"
    ERROR: ClassVar[type[LetheError]] = PipelineError

    scenario: str  # a row of lethe.forgetting.SCENARIOS
    dataset: str
    sample_ids: list[str] = Field(default_factory=list)
    forget_class: int | None = None
    request_ids: list[str] = Field(default_factory=list)
    parent: dict[str, Any] = Field(default_factory=dict)  # name, version, fingerprint of the model
    num_samples: int = 0
    num_subjects: int = 0
    #: Request id → its sample ids (a scheduled run's): the per-example test judges each request apart.
    request_samples: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("scenario")
    @classmethod
    def _known_scenario(cls, name: str) -> str:
        if name not in SCENARIOS:  # a ValueError: the record's refusal names the field
            raise ValueError(f"unknown scenario {name!r}; expected one of {', '.join(SCENARIOS)}")
        return name

    @property
    def empty(self) -> bool:
        return not self.sample_ids and self.forget_class is None

    def forget_kwargs(self) -> dict[str, Any]:
        """The forget-set arguments of `lethe.steps.unlearn` / `lethe.steps.evaluate`."""
        return {"forget_ids": list(self.sample_ids), "forget_class": self.forget_class,
                "scenario": self.scenario}

    def save(self, directory: str | Path) -> Path:
        """Write `forget.json` into `directory` (a pipeline artifact's folder)."""
        return self.write(Path(directory) / FORGET_FILE)

    @classmethod
    def load(cls, path: str | Path) -> ForgetSpec:
        """The spec in `path`: a folder holding `forget.json`, or the file itself."""
        path = Path(path)
        return cls.read(path / FORGET_FILE if path.is_dir() else path)
