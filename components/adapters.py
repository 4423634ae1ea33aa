"""The forget spec's adapters to the unlearn and evaluate steps: what the KFP components call.

A pipeline hands its steps paths of artifacts; these read the run's forget spec and pass its forget
set to `lethe.steps.unlearn.unlearn` / `lethe.steps.evaluate.evaluate`. They live with the components
(the steps know nothing of KFP's artifact folders); the module itself imports no kfp and no torch (the
steps load where they run: building a pipeline imports every component module).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lethe.forgetting.alpha import parse_alpha
from lethe.forgetting.spec import ForgetSpec
from lethe.steps.layout import REPORT_FILE, importances_file
from lethe.steps.results import EvaluationResult, RepairResult, UnlearnResult


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
    """`unlearn` on this run's forget set with the given full-data importances.

    `method`: the importance method the run asked for; empty means the importances' own (the
    forget pass always uses theirs, and a different one is refused). `cutoff` (empty: the default for
    `alpha`) and `thresholds` (inline YAML or a storage URI; empty: the defaults) as for `unlearn`."""
    from lethe.steps.unlearn import unlearn

    spec = ForgetSpec.load(forget_path)
    return unlearn(
        model_path, dataset or spec.dataset, **spec.forget_kwargs(), alpha=parse_alpha(alpha),
        cutoff=cutoff or None, lam=lam, thresholds=thresholds or None,
        importances=importances_file(importances_path), batch_size=batch_size, method=method or None,
        out_dir=out_dir, device=device, progress=progress)


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
    """`evaluate` on this run's forget set; copies report.html to `report_path`."""
    from lethe.steps.evaluate import evaluate

    spec = ForgetSpec.load(forget_path)
    result = evaluate(candidate_path, parent_path, dataset or spec.dataset,
                                    **spec.forget_kwargs(), out_dir=out_dir, thresholds=thresholds,
                                    device=device, progress=progress, requests=spec.request_samples or None)
    if report_path is not None:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(out_dir) / REPORT_FILE, report_path)
    return result


def repair_from_spec(
    candidate_path: str | Path,
    parent_path: str | Path,
    forget_path: str | Path,
    evaluation_path: str | Path,
    out_dir: str | Path,
    *,
    dataset: str | None = None,
    ladder: str | None = None,
    device: str | None = None,
    progress: bool = True,
) -> RepairResult:
    """`repair` on this run's forget set: the ladder policy's method for the gate's refusal of the
    candidate (its evaluation), within the policy's budget."""
    from lethe.steps.repair import repair

    spec = ForgetSpec.load(forget_path)
    return repair(candidate_path, parent_path, dataset or spec.dataset, **spec.forget_kwargs(),
                  out_dir=out_dir, evaluation_dir=evaluation_path, ladder=ladder or None, device=device,
                  progress=progress)
