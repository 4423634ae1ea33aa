"""Evaluation a reviewer can trust: accuracies, membership inference, the gate, the evidence.

See docs/architecture.md, "Evaluation". Everything works on one batched forward pass per model
and split; the gate is a pure function of the resulting metrics.
"""

from lethe.evaluation.evaluator import evaluate_candidate, model_metrics
from lethe.evaluation.forward import predict_logits
from lethe.evaluation.gate import CHECKS, Check, GateDecision, decide
from lethe.evaluation.metrics import accuracy, agreement, check_logits, cross_entropy, entropy
from lethe.evaluation.mia import MembershipResult, calibrated_gap, membership_inference, reference_member_rate
from lethe.evaluation.plots import dampened_share_per_layer, plot_dampening, plot_entropy_distributions
from lethe.evaluation.probe import feature_probe, penultimate_features
from lethe.evaluation.report import comparison_frame, evidently_disagreements, write_evidently_report
from lethe.evaluation.targets import TARGETS, ClassTarget, ForgettingTarget, SubjectTarget, TargetMeasurement
from lethe.evaluation.thresholds import Thresholds, load_thresholds

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
