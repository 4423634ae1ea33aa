"""Membership inference: does the model still treat the forget samples like training data?

Two attacks on per-sample features of the model's outputs (the softmax entropy by default;
label-free; the cross-entropy loss is added when labels exist):

- reference (SSD/LFSSD papers): logistic regression (class_weight="balanced") fit on retain
  samples (member) against test samples (non-member); score = share of forget samples
  predicted member. For a whole forgotten class this should fall to about 0.
- calibrated: fit on one half of the test set against an equal-size retain sample; compare the
  forget samples' member rate with the member rate of the held-out test half (the attack's
  false-positive rate on data the model never saw). gap = forget rate − holdout rate, with a
  bootstrap 95% interval. After forgetting specific samples, the gap should be about 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from lethe.errors import EvaluationError
from lethe.evaluation.metrics import cross_entropy, entropy

BOOTSTRAP_SAMPLES = 1000


@dataclass(frozen=True)
class MembershipResult:
    """Member rates of the two attacks; `gap_ci` is the bootstrap 95% interval of `gap`."""

    features: str
    reference_member_rate: float
    holdout_member_rate: float
    forget_member_rate: float
    gap: float
    gap_ci: tuple[float, float]
    num_forget: int
    num_fit: int

    def to_dict(self) -> dict:
        return {**asdict(self), "gap_ci": list(self.gap_ci)}


def membership_features(logits: torch.Tensor, labels: torch.Tensor | None = None) -> np.ndarray:
    """[N, 1] entropy, or [N, 2] entropy and log-loss when labels are given."""
    columns = [entropy(logits)]
    if labels is not None:
        columns.append(torch.log(cross_entropy(logits, labels) + 1e-12))  # loss spans decades
    return torch.stack(columns, dim=1).double().numpy()


def _attack() -> object:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # Scaling keeps lbfgs well conditioned when the loss feature is added; lbfgs is deterministic.
    return make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced"))


def _fit_predict(members: np.ndarray, non_members: np.ndarray, *queries: np.ndarray) -> list[np.ndarray]:
    if len(members) == 0 or len(non_members) == 0:
        raise EvaluationError("membership inference needs both member and non-member samples")
    x = np.concatenate([members, non_members])
    y = np.concatenate([np.ones(len(members), dtype=int), np.zeros(len(non_members), dtype=int)])
    if np.ptp(x, axis=0).max() == 0:
        # Constant features (e.g. a model that outputs the same thing for everything) carry no
        # membership signal; the balanced attack cannot do better than a coin, so call nothing member.
        return [np.zeros(len(q), dtype=int) for q in queries]
    attack = _attack().fit(x, y)
    return [attack.predict(q) if len(q) else np.zeros(0, dtype=int) for q in queries]


def reference_member_rate(retain: np.ndarray, test: np.ndarray, forget: np.ndarray) -> float:
    """The papers' attack: fit retain (member) vs test (non-member); share of forget predicted member."""
    (predicted,) = _fit_predict(retain, test, forget)
    return float(predicted.mean())


def bootstrap_gap_ci(forget_pred: np.ndarray, holdout_pred: np.ndarray, *, rng: np.random.Generator,
                     samples: int = BOOTSTRAP_SAMPLES) -> tuple[float, float]:
    """Percentile 95% interval of mean(forget_pred) − mean(holdout_pred), resampling both sides."""
    def resampled_means(pred: np.ndarray) -> np.ndarray:
        return pred[rng.integers(0, len(pred), (samples, len(pred)))].mean(axis=1)

    low, high = np.percentile(resampled_means(forget_pred) - resampled_means(holdout_pred), [2.5, 97.5])
    return float(low), float(high)


@dataclass(frozen=True)
class CalibratedGap:
    forget_member_rate: float
    holdout_member_rate: float
    gap: float
    gap_ci: tuple[float, float]
    num_fit: int


def calibrated_gap(retain: np.ndarray, test: np.ndarray, forget: np.ndarray, *, seed: int = 0,
                   bootstrap: int = BOOTSTRAP_SAMPLES) -> CalibratedGap:
    """The calibrated attack (module docstring); `bootstrap=0` skips the interval (it is then the point)."""
    if len(test) < 4:
        raise EvaluationError(f"the calibrated attack needs at least 4 held-out samples, got {len(test)}")
    if len(forget) == 0:
        raise EvaluationError("membership inference needs at least one forget sample")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(test))
    fit_idx, holdout_idx = order[: len(test) // 2], order[len(test) // 2:]
    retain_idx = rng.choice(len(retain), size=min(len(fit_idx), len(retain)), replace=False)
    forget_pred, holdout_pred = _fit_predict(retain[retain_idx], test[fit_idx], forget, test[holdout_idx])
    forget_rate, holdout_rate = float(forget_pred.mean()), float(holdout_pred.mean())
    gap = forget_rate - holdout_rate
    ci = bootstrap_gap_ci(forget_pred, holdout_pred, rng=rng, samples=bootstrap) if bootstrap else (gap, gap)
    return CalibratedGap(forget_rate, holdout_rate, gap, ci, len(fit_idx))


def membership_inference(
    retain: torch.Tensor,
    test: torch.Tensor,
    forget: torch.Tensor,
    *,
    labels: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    seed: int = 0,
    bootstrap: int = BOOTSTRAP_SAMPLES,
) -> MembershipResult:
    """Both attacks on the logits of retain, test (non-member) and forget samples.

    With `labels` = (retain, test, forget) labels the features are entropy and loss; without,
    entropy only (label-free). Deterministic for a given seed.
    """
    labels = labels or (None, None, None)
    retain_f, test_f, forget_f = (membership_features(lg, lb)
                                  for lg, lb in zip((retain, test, forget), labels, strict=True))
    calibrated = calibrated_gap(retain_f, test_f, forget_f, seed=seed, bootstrap=bootstrap)
    return MembershipResult(
        features="entropy" if labels[0] is None else "entropy+loss",
        reference_member_rate=reference_member_rate(retain_f, test_f, forget_f),
        holdout_member_rate=calibrated.holdout_member_rate,
        forget_member_rate=calibrated.forget_member_rate,
        gap=calibrated.gap,
        gap_ci=calibrated.gap_ci,
        num_forget=len(forget_f),
        num_fit=calibrated.num_fit,
    )
