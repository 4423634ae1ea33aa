"""Evaluation a reviewer can trust: accuracies, membership inference, the gate, the evidence.

See docs/architecture.md, "Evaluation". Everything works on one batched forward pass per model
and split; the gate is a pure function of the resulting metrics. Imported lazily:
`from lethe.evaluation.thresholds import load_thresholds` loads no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "evaluate_candidate": "lethe.evaluation.evaluator",
    "model_metrics": "lethe.evaluation.evaluator",
    "predict_logits": "lethe.evaluation.forward",
    "CHECKS": "lethe.evaluation.gate",
    "Check": "lethe.evaluation.gate",
    "GateDecision": "lethe.evaluation.gate",
    "decide": "lethe.evaluation.gate",
    "accuracy": "lethe.evaluation.metrics",
    "agreement": "lethe.evaluation.metrics",
    "check_logits": "lethe.evaluation.metrics",
    "cross_entropy": "lethe.evaluation.metrics",
    "entropy": "lethe.evaluation.metrics",
    "MembershipResult": "lethe.evaluation.mia",
    "calibrated_gap": "lethe.evaluation.mia",
    "membership_inference": "lethe.evaluation.mia",
    "reference_member_rate": "lethe.evaluation.mia",
    "dampened_share_per_layer": "lethe.evaluation.plots",
    "plot_dampening": "lethe.evaluation.plots",
    "plot_entropy_distributions": "lethe.evaluation.plots",
    "feature_probe": "lethe.evaluation.probe",
    "penultimate_features": "lethe.evaluation.probe",
    "comparison_frame": "lethe.evaluation.report",
    "evidently_disagreements": "lethe.evaluation.report",
    "write_evidently_report": "lethe.evaluation.report",
    "TARGETS": "lethe.evaluation.targets",
    "ClassTarget": "lethe.evaluation.targets",
    "ForgettingTarget": "lethe.evaluation.targets",
    "SubjectTarget": "lethe.evaluation.targets",
    "TargetMeasurement": "lethe.evaluation.targets",
    "Thresholds": "lethe.evaluation.thresholds",
    "load_thresholds": "lethe.evaluation.thresholds",
}

__all__ = [
    "CHECKS",
    "TARGETS",
    "Check",
    "ClassTarget",
    "ForgettingTarget",
    "GateDecision",
    "MembershipResult",
    "SubjectTarget",
    "TargetMeasurement",
    "Thresholds",
    "accuracy",
    "agreement",
    "calibrated_gap",
    "check_logits",
    "comparison_frame",
    "cross_entropy",
    "dampened_share_per_layer",
    "decide",
    "entropy",
    "evidently_disagreements",
    "evaluate_candidate",
    "feature_probe",
    "load_thresholds",
    "membership_inference",
    "model_metrics",
    "plot_dampening",
    "plot_entropy_distributions",
    "penultimate_features",
    "predict_logits",
    "reference_member_rate",
    "write_evidently_report",
]

if TYPE_CHECKING:
    from lethe.evaluation.evaluator import evaluate_candidate, model_metrics
    from lethe.evaluation.forward import predict_logits
    from lethe.evaluation.gate import CHECKS, Check, GateDecision, decide
    from lethe.evaluation.metrics import accuracy, agreement, check_logits, cross_entropy, entropy
    from lethe.evaluation.mia import (
        MembershipResult,
        calibrated_gap,
        membership_inference,
        reference_member_rate,
    )
    from lethe.evaluation.plots import dampened_share_per_layer, plot_dampening, plot_entropy_distributions
    from lethe.evaluation.probe import feature_probe, penultimate_features
    from lethe.evaluation.report import comparison_frame, evidently_disagreements, write_evidently_report
    from lethe.evaluation.targets import (
        TARGETS,
        ClassTarget,
        ForgettingTarget,
        SubjectTarget,
        TargetMeasurement,
    )
    from lethe.evaluation.thresholds import Thresholds, load_thresholds


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lethe.evaluation' has no attribute {name!r}")
