"""What one run forgets, frozen when the run starts: the `forget` artifact between pipeline steps.

Written by `collect_requests` (scheduled run) or `prepare_request` (on demand), read by every
later step, so they all work on the same samples and the same parent model even if the ledger or
the registry move meanwhile. It holds sample ids and request ids, never a subject id.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lethe.errors import PipelineError
from lethe.steps.alpha import parse_alpha
from lethe.steps.layout import REPORT_FILE
from lethe.steps.results import EvaluationResult, UnlearnResult
from lethe.storage.records import read_record, write_record

FORGET_FILE = "forget.json"
FORMAT = "lethe-forget-spec/1"


@dataclass
class ForgetSpec:
    scenario: str  # "subject" | "class"
    dataset: str
    sample_ids: list[str] = field(default_factory=list)
    forget_class: int | None = None
    request_ids: list[str] = field(default_factory=list)
    parent: dict[str, Any] = field(default_factory=dict)  # name, version, fingerprint of the model
    num_samples: int = 0
    num_subjects: int = 0
    #: Request id → its sample ids (a scheduled run's): the per-example test judges each request apart.
    request_samples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.sample_ids and self.forget_class is None

    def forget_kwargs(self) -> dict[str, Any]:
        """The forget-set arguments of `lethe.steps.unlearn` / `lethe.steps.evaluate`."""
        return {"forget_ids": list(self.sample_ids), "forget_class": self.forget_class,
                "scenario": self.scenario}

    def save(self, directory: str | Path) -> Path:
        return write_record(Path(directory) / FORGET_FILE, FORMAT, asdict(self))

    @classmethod
    def load(cls, directory: str | Path) -> ForgetSpec:
        path = Path(directory)
        path = path / FORGET_FILE if path.is_dir() else path
        return cls(**read_record(path, FORMAT, what="a lethe forget set", error=PipelineError))


def unlearn_from_spec(
    model_path: str | Path,
    forget_path: str | Path,
    importances_path: str | Path,
    out_dir: str | Path,
    *,
    dataset: str | None = None,
    batch_size: int,
    alpha: str | float | None = "search",
    cutoff: str | None = None,
    lam: float = 1.0,
    method: str | None = None,
    thresholds: str | None = None,
    device: str | None = None,
    progress: bool = True,
) -> UnlearnResult:
    """`lethe.steps.unlearn.unlearn` on this run's forget set with the given full-data importances.

    `method`: the importance method the run asked for; empty means the importances' own (the
    forget pass always uses theirs, and a different one is refused). `cutoff` (empty: the default for
    `alpha`) and `thresholds` (inline YAML or a storage URI; empty: the defaults) as for `unlearn`."""
    from lethe.steps.layout import importances_file
    from lethe.steps.unlearn import unlearn

    spec = ForgetSpec.load(forget_path)
    return unlearn(model_path, dataset or spec.dataset, **spec.forget_kwargs(), alpha=parse_alpha(alpha),
                   cutoff=cutoff or None, lam=lam, thresholds=thresholds or None,
                   importances=importances_file(importances_path), batch_size=batch_size,
                   method=method or None, out_dir=out_dir, device=device, progress=progress)


def evaluate_from_spec(
    candidate_path: str | Path,
    parent_path: str | Path,
    forget_path: str | Path,
    out_dir: str | Path,
    *,
    report_path: str | Path | None = None,
    dataset: str | None = None,
    thresholds: str | None = None,
    device: str | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """`lethe.steps.evaluate.evaluate` on this run's forget set; copies report.html to `report_path`."""
    import shutil

    from lethe.steps.evaluate import evaluate

    spec = ForgetSpec.load(forget_path)
    result = evaluate(candidate_path, parent_path, dataset or spec.dataset, **spec.forget_kwargs(),
                      out_dir=out_dir, thresholds=thresholds, device=device, progress=progress,
                      requests=spec.request_samples or None)
    if report_path is not None:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(out_dir) / REPORT_FILE, report_path)
    return result
