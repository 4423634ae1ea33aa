"""The Evidently report: the candidate's predictions against the parent's, on the same samples.

ClassificationPreset compares quality (reference = parent, current = candidate, same rows and
true labels); DataDriftPreset on the predicted class and the class probabilities shows how
much the predictions moved. Evidence is never silently missing: any Evidently failure raises
EvaluationError and fails the step.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import UndefinedMetricWarning

from lethe.errors import EvaluationError

SUBSET_COLUMN = "subset"


def _proba_columns(num_classes: int) -> list[str]:
    return [str(k) for k in range(num_classes)]


def predictions_frame(logits: torch.Tensor, labels: torch.Tensor, subsets: list[str]) -> pd.DataFrame:
    """One row per sample: true class, predicted class, per-class probabilities, subset name."""
    probs = torch.softmax(logits.double(), dim=1).numpy()
    frame = pd.DataFrame(probs, columns=_proba_columns(probs.shape[1]))
    # Classes as strings: Evidently treats them as categories and matches them to the proba columns.
    frame.insert(0, "target", [str(int(y)) for y in labels])
    frame.insert(1, "prediction", [str(int(k)) for k in probs.argmax(axis=1)])
    frame[SUBSET_COLUMN] = subsets
    return frame


def select_rows(sizes: Mapping[str, int], *, max_per_subset: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Sorted row indices per subset, at most `max_per_subset` each (seeded sample when larger)."""
    rng = np.random.default_rng(seed)
    return {name: np.arange(n) if n <= max_per_subset
            else np.sort(rng.choice(n, max_per_subset, replace=False)) for name, n in sizes.items()}


def write_evidently_report(
    parent: pd.DataFrame, candidate: pd.DataFrame, html_path: str | Path, json_path: str | Path,
) -> dict:
    """Run the report (reference = parent, current = candidate); save HTML and JSON; return its dict."""
    if len(parent) != len(candidate) or len(parent) == 0:
        raise EvaluationError("the Evidently report needs the parent's and the candidate's predictions "
                              "on the same, non-empty set of samples")
    try:
        from evidently import DataDefinition, Dataset, MulticlassClassification, Report
        from evidently.presets import ClassificationPreset, DataDriftPreset

        probas = [c for c in parent.columns if c.isdigit()]
        definition = DataDefinition(
            classification=[MulticlassClassification(target="target", prediction_labels="prediction",
                                                      prediction_probas=probas)],
            categorical_columns=["target", "prediction", SUBSET_COLUMN],
            numerical_columns=probas,
        )
        report = Report([ClassificationPreset(), DataDriftPreset(columns=["prediction", *probas])],
                        include_tests=True)
        with warnings.catch_warnings():
            # A class nobody predicts any more (the point of forgetting it) has undefined precision;
            # the report shows it as 0, which is what the reviewer should see.
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            snapshot = report.run(current_data=Dataset.from_pandas(candidate, data_definition=definition),
                                  reference_data=Dataset.from_pandas(parent, data_definition=definition))
        Path(html_path).parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(html_path))  # Evidently writes only when given a str
        snapshot.save_json(str(json_path))
    except EvaluationError:
        raise
    except Exception as exc:  # any failure inside Evidently: the evidence would be missing
        raise EvaluationError(f"the Evidently report failed: {type(exc).__name__}: {exc}") from exc
    try:
        return json.loads(Path(json_path).read_text())
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"the Evidently report was not written to {json_path}: {exc}") from exc
