"""The Evidently report: the parent and the candidate, under those names, on the same samples.

One section per subset (forget, retain, test; in the class scenario also the forgotten class's test
samples): both models' accuracy and F1 (named classifications "parent" and "candidate" of one data
set, so the report never says "reference" or "current") and how often the candidate predicts what the
parent predicted, computed by Evidently on every row of the section (a seeded sample of the retain rows
where the evaluator draws one: the section's title says so). Its tests are the gate's checks with the gate's
thresholds: the accuracy drops and the class's forget accuracy are tested where Evidently computes
them from the rows (not on a sample: there the gate section tests the gate's values), the rest
(member-rate gap, per-example test, unchanged parameters) in a "gate"
section on the gate's own values, so no test can contradict the gate's decision. Evidence is never
silently missing: any Evidently failure raises EvaluationError and fails the step.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lethe.errors import EvaluationError
from lethe.evaluation.gate import TOLERANCE, Check

if TYPE_CHECKING:
    import pandas as pd

ROLES = ("parent", "candidate")
AGREEMENT_COLUMN = "agrees_with_parent"
SECTION_TITLES = {
    "forget": "Forget samples (what the request asks to forget)",
    "retain": "Retained training samples",
    "test": "Held-out test samples",
    "forgotten_class_test": "Test samples of the forgotten class (not gated: forgetting a class fails them)",
    "gate": "The gate's checks (its values and thresholds)",
}
#: Gate checks that Evidently computes itself, in the section holding the rows they are measured on.
SECTION_CHECKS = {"forget_accuracy": "forget", "retain_accuracy_drop": "retain", "test_accuracy_drop": "test"}


def comparison_frame(parent_logits: torch.Tensor, candidate_logits: torch.Tensor,
                     labels: torch.Tensor) -> pd.DataFrame:
    """One row per sample: the true class, each model's predicted class and class probabilities
    (`parent_proba_<k>`, ...), and whether the two models agree."""
    import pandas as pd

    if not len(parent_logits) == len(candidate_logits) == len(labels):
        raise EvaluationError("the report needs the parent's and the candidate's outputs on the same samples")
    # Classes as strings: Evidently treats them as categories and matches them to the proba columns.
    frame = pd.DataFrame({"target": [str(int(y)) for y in labels]})
    for role, logits in zip(ROLES, (parent_logits, candidate_logits), strict=True):
        probs = torch.softmax(logits.double(), dim=1).numpy()
        frame[f"{role}_prediction"] = [str(int(k)) for k in probs.argmax(axis=1)]
        for k in range(probs.shape[1]):
            frame[f"{role}_proba_{k}"] = probs[:, k]
    frame[AGREEMENT_COLUMN] = (frame["parent_prediction"] == frame["candidate_prediction"]).astype(float)
    return frame


def _model_view(frame: pd.DataFrame, role: str) -> pd.DataFrame:
    """One model's columns under Evidently's names: target, prediction, one probability column per class
    (all classes are then known to Evidently, even where the rows hold only two)."""
    prefix = f"{role}_proba_"
    view = frame[["target", f"{role}_prediction", *(c for c in frame.columns if c.startswith(prefix))]]
    view = view.rename(columns={f"{role}_prediction": "prediction",
                                **{c: c[len(prefix):] for c in view.columns if c.startswith(prefix)}})
    if role == "candidate":
        view = view.assign(**{AGREEMENT_COLUMN: frame[AGREEMENT_COLUMN]})
    return view


def _section(frame: pd.DataFrame, checks: Sequence[Check]) -> list[tuple[str, pd.DataFrame, list[Any],
                                                                          list[str], list[str]]]:
    """Evidently runs for one subset's rows, one per model: (role, rows, metrics, the name each metric is
    shown under, the gate checks its tests mirror, in order)."""
    from evidently.metrics import Accuracy, F1Score, MeanValue, RowCount
    from evidently.tests import gte, lte

    parent_accuracy = float((frame["target"] == frame["parent_prediction"]).mean())
    tests, mirrored = [], []
    for check in checks:
        if check.name == "forget_accuracy":  # candidate forget accuracy <= limit
            tests.append(lte(check.limit + TOLERANCE))
        else:  # parent - candidate <= limit  <=>  candidate >= parent - limit
            tests.append(gte(parent_accuracy - check.limit - TOLERANCE))
        mirrored.append(check.name)
    return [
        ("parent", _model_view(frame, "parent"),
         [RowCount(), Accuracy(classification_name="parent"), F1Score(classification_name="parent")],
         ["samples", "parent", "parent"], []),
        ("candidate", _model_view(frame, "candidate"),
         [Accuracy(classification_name="candidate", tests=tests), F1Score(classification_name="candidate"),
          MeanValue(column=AGREEMENT_COLUMN)],
         ["candidate", "candidate", "candidate agrees with parent"], mirrored),
    ]


def _name_widgets(snapshot: Any, shown: Sequence[str]) -> None:
    """Put the model's name on each metric's widgets (Evidently titles both "Accuracy metric", and calls
    a single data set "current")."""
    for item, name in zip(snapshot._snapshot_item, shown, strict=True):
        for widget in item.widgets:
            widget.title = f"{name}: {str(widget.title).replace('current: ', '')}" if widget.title else name


def _gate_section(checks: Sequence[Check]) -> tuple[pd.DataFrame, list[Any], list[str]]:
    import pandas as pd
    from evidently.metrics import MaxValue
    from evidently.tests import lte

    # A check that could not be measured fails the gate; +inf fails Evidently's test the same way.
    frame = pd.DataFrame({c.name: [c.value if math.isfinite(c.value) else math.inf] for c in checks})
    metrics = [MaxValue(column=c.name, tests=[lte(c.limit + TOLERANCE)]) for c in checks]
    return frame, metrics, [c.name for c in checks]


def write_evidently_report(sections: Mapping[str, pd.DataFrame], checks: Sequence[Check],
                           html_path: str | Path, json_path: str | Path, *,
                           samples: Mapping[str, Mapping[str, int]] | None = None) -> dict:
    """Run one Evidently report per section (frames from `comparison_frame`) and one for the gate's other
    checks; save them as one HTML page and one JSON document; return the JSON's dict.

    `samples`: the sections whose frame is a seeded sample of their rows (name → {"rows", "of", "seed"}):
    their title says so, and the gate checks measured on their rows are tested in the gate section on
    the gate's own values (every row), so that a sample can never contradict the gate.
    The dict: `sections` (name → Evidently's dict), `metrics` and `tests` (every section's, each with its
    `section`; every test with the gate `check` it mirrors), `samples` (as given)."""
    if not sections or any(len(frame) == 0 for frame in sections.values()):
        raise EvaluationError("the Evidently report needs the parent's and the candidate's predictions on "
                              "non-empty sets of samples")
    samples = dict(samples or {})
    titles = {**SECTION_TITLES, **{name: f"{SECTION_TITLES.get(name, name)}: a seeded sample of "
                                         f"{s['rows']:,} of {s['of']:,} rows (seed {s['seed']}; the gate "
                                         f"measures every row)" for name, s in samples.items()}}
    in_section = {name: [c for c in checks if SECTION_CHECKS.get(c.name) == name and name not in samples]
                  for name in sections}
    placed = {c.name for group in in_section.values() for c in group}
    rest = [c for c in checks if c.name not in placed]
    try:
        from evidently import DataDefinition, Dataset, MulticlassClassification, Report
        from evidently.core.metric_types import metric_tests_widget, render_widgets
        from evidently.core.report import metric_tests_stats
        from evidently.legacy.renderers.html_widgets import group_widget
        from sklearn.exceptions import UndefinedMetricWarning

        def definition(role: str, view: pd.DataFrame) -> Any:
            probas = [c for c in view.columns if c.isdigit()]
            return DataDefinition(
                classification=[MulticlassClassification(name=role, target="target",
                                                          prediction_labels="prediction",
                                                          prediction_probas=probas)],
                categorical_columns=["target", "prediction"],
                numerical_columns=[*probas, *([AGREEMENT_COLUMN] if AGREEMENT_COLUMN in view else [])])

        runs: list[tuple[str, Any, list[str]]] = []
        with warnings.catch_warnings():
            # A class nobody predicts any more (the point of forgetting it) has undefined precision;
            # the report shows it as 0, which is what the reviewer should see.
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            for name, frame in sections.items():
                for role, view, metrics, shown, mirrored in _section(frame, in_section[name]):
                    rows = Dataset.from_pandas(view, data_definition=definition(role, view))
                    snapshot = Report(metrics).run(rows)
                    _name_widgets(snapshot, shown)
                    runs.append((name, snapshot, mirrored))
            if rest:
                frame, metrics, mirrored = _gate_section(rest)
                snapshot = Report(metrics).run(Dataset.from_pandas(
                    frame, data_definition=DataDefinition(numerical_columns=list(frame.columns))))
                runs.append(("gate", snapshot, mirrored))
        # One page: each section's widgets under its title, then every test (Evidently 0.7's renderer).
        grouped: dict[str, list[Any]] = {}
        for name, snapshot, _ in runs:
            grouped.setdefault(name, []).extend(snapshot._widgets)
        widgets = [group_widget(title=titles.get(name, name), widgets=items)
                   for name, items in grouped.items()]
        results = [result for _, snapshot, _ in runs for result in snapshot.tests_results]
        if results:
            widgets += [metric_tests_stats(results), metric_tests_widget(results)]
        html = render_widgets(widgets)
        document: dict[str, Any] = {"sections": {}, "metrics": [], "tests": [], "samples": samples}
        for name, snapshot, mirrored in runs:
            raw = json.loads(snapshot.json())  # NumPy values made plain
            section = document["sections"].setdefault(name, {"metrics": [], "tests": []})
            section["metrics"] += raw["metrics"]
            section["tests"] += raw["tests"]
            document["metrics"] += [{**m, "section": name} for m in raw["metrics"]]
            if len(raw["tests"]) != len(mirrored):
                raise EvaluationError(f"the Evidently section {name} ran {len(raw['tests'])} tests for "
                                      f"{len(mirrored)} gate checks")
            document["tests"] += [{**t, "section": name, "check": check}
                                  for t, check in zip(raw["tests"], mirrored, strict=True)]
        Path(html_path).parent.mkdir(parents=True, exist_ok=True)
        Path(html_path).write_text(html, encoding="utf-8")
        Path(json_path).write_text(json.dumps(document, default=_plain) + "\n")
    except EvaluationError:
        raise
    except Exception as exc:  # any failure inside Evidently: the evidence would be missing
        raise EvaluationError(f"the Evidently report failed: {type(exc).__name__}: {exc}") from exc
    return document


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def evidently_disagreements(report: Mapping[str, Any], checks: Sequence[Check]) -> list[str]:
    """Every Evidently test whose status differs from the gate check it mirrors (empty: they agree)."""
    passed = {c.name: c.passed for c in checks}
    problems = []
    for test in report.get("tests", []):
        check = test.get("check")
        ok = test.get("status") == "SUCCESS"
        if check not in passed:
            problems.append(f"Evidently test {test.get('name')!r} mirrors no gate check")
        elif ok != passed[check]:
            problems.append(f"Evidently test {test.get('name')!r} is {test.get('status')} but the gate's "
                            f"{check} {'passed' if passed[check] else 'failed'}")
    missing = sorted(set(passed) - {t.get("check") for t in report.get("tests", [])})
    problems += [f"the gate's {name} has no Evidently test" for name in missing]
    return problems
