"""The membership test: was this person still recognised as training data? Per sample as detail.

The unit of the judgement is the person (a request): `lethe.evaluation.per_person` pools a person's
samples into one statistic against reference models that never met them (halves drawn by subject),
calibrated on a null of real persons, and gives each request its outcome (`still_flagged`, `removed`,
`not_memorised`, `inconclusive`) at the run's family-wise level. This module computes the per-sample
evidence the person test and the reviewer read, and assembles both into one evidence document.

Per sample: offline LiRA (Carlini et al. 2022), forward passes only. The target model's logit-scaled
confidence on the sample's label, φ = log p_y − log(1 − p_y), is compared with the reference models
that never saw the sample ("out"): a one-sided z-score against their mean. With few out models per
sample (K reference models on halves leave about K/2), a per-sample variance is noise, so the variance
is pooled over samples; the z-score uses the predictive spread σ·sqrt(1 + 1/n_out), so that samples
with two out models and held-out samples with K are on one scale. A sample is flagged when its score
exceeds a threshold set at a fixed false-positive rate on one half of the held-out non-members (test
samples: out of every reference and of the target); the share reported for non-members comes from the
other half. Each request's flagged share, parent and candidate, carries a 95% Wilson interval, and a
per-sample outcome (`per_sample_outcome`, detail only: the per-sample test treats a person's correlated
images as independent, which is why it no longer decides):
- `still_flagged`: the candidate's share is above the non-member share (its lower bound > m_hi);
- `removed`: the parent's share is above it and the candidate's is not;
- `not_memorised`: the parent's share is below m + margin with 95% confidence;
- `inconclusive`: neither. The margin is the gate's member-rate gap (`subject_member_rate_gap_max`).

A reference set that cannot judge a person (per-sample halves of an older lethe) gives every request
`inconclusive` and the evidence's `refused` says why in one line; the gate then sends the version to a
reviewer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lethe.errors import EvaluationError
from lethe.evaluation.confidence import Share, logit_confidence, pooled_variance, wilson_interval
from lethe.evaluation.per_person import judge_persons

PER_EXAMPLE_FPRS = (0.01, 0.05)
#: Below this many out models a sample's own variance is noise; LiRA's offline variant pools it.
MIN_OUT_MODELS_FOR_OWN_VARIANCE = 32
#: Share above the non-member share still read as "not memorised" (the gate's member-rate gap).
DEFAULT_MARGIN = 0.05
OUTCOMES = ("removed", "not_memorised", "still_flagged", "inconclusive")
#: Several outcomes in one (the run's, over its requests): the first of these that any reached.
OUTCOME_PRECEDENCE = ("still_flagged", "removed", "not_memorised", "inconclusive")


def lira_scores(target_logits: torch.Tensor, labels: torch.Tensor, reference_logits: torch.Tensor,
                out_mask: torch.Tensor, *, variance: float | None = None) -> torch.Tensor:
    """One-sided offline-LiRA z-scores [n] (float64; higher = more member-like; NaN where no reference
    model left the sample out).

    `target_logits` [n, C], `labels` [n], `reference_logits` [K, n, C], `out_mask` [K, n] (True where the
    sample was out of that reference model's training half). `variance`: the pooled variance of φ
    (default: pooled over these samples); samples with at least MIN_OUT_MODELS_FOR_OWN_VARIANCE out
    models use their own."""
    if reference_logits.ndim != 3 or reference_logits.shape[1:] != target_logits.shape:
        raise EvaluationError(f"reference logits {tuple(reference_logits.shape)} do not match the target's "
                              f"{tuple(target_logits.shape)} (expected [K, n, C])")
    return scores_from_confidences(logit_confidence(target_logits, labels),
                                   logit_confidence(reference_logits, labels), out_mask, variance=variance)


def scores_from_confidences(phi: torch.Tensor, reference_phi: torch.Tensor, out_mask: torch.Tensor, *,
                            variance: float | None = None) -> torch.Tensor:
    """`lira_scores` on confidences already computed: the target's φ [n], the references' φ [K, n] (the
    reference side is computed once per evaluation and shared by the parent and the candidate)."""
    out = out_mask.to(torch.bool)
    if out.shape != reference_phi.shape or reference_phi.shape[1:] != phi.shape:
        raise EvaluationError(f"the out mask {tuple(out.shape)} does not match the reference models' "
                              f"confidences {tuple(reference_phi.shape)} on {len(phi)} samples")
    counts = out.sum(dim=0)
    means = torch.where(out, reference_phi, 0.0).sum(dim=0) / counts.clamp(min=1)
    pooled = pooled_variance(reference_phi, out) if variance is None else float(variance)
    own = torch.where(out, (reference_phi - means) ** 2, 0.0).sum(dim=0) / (counts - 1).clamp(min=1)
    spread = torch.where(counts >= MIN_OUT_MODELS_FOR_OWN_VARIANCE, own, torch.full_like(own, pooled))
    scale = torch.sqrt(spread.clamp(min=1e-12) * (1 + 1 / counts.clamp(min=1)))
    scores = (phi - means) / scale
    return torch.where(counts > 0, scores, torch.full_like(scores, float("nan")))


def calibrate_threshold(non_member_scores: torch.Tensor, fpr: float) -> float:
    """The score above which a share `fpr` of these non-members lies (NaN scores ignored)."""
    if not 0 < fpr < 1:
        raise EvaluationError(f"the false-positive rate must be in (0, 1), got {fpr}")
    scores = non_member_scores[~torch.isnan(non_member_scores)].double()
    if len(scores) < math.ceil(1 / fpr):
        raise EvaluationError(f"calibrating at {fpr:.0%} FPR needs at least {math.ceil(1 / fpr)} held-out "
                              f"non-members, got {len(scores)}")
    return float(torch.quantile(scores, 1 - fpr, interpolation="higher"))


def flagged_share(scores: torch.Tensor, threshold: float) -> Share:
    """The share of (scored, non-NaN) samples above `threshold`, with its 95% interval."""
    scored = scores[~torch.isnan(scores)]
    n, flagged = len(scored), int((scored > threshold).sum())
    low, high = wilson_interval(flagged, n)
    return Share(flagged, n, flagged / n if n else float("nan"), low, high)


def outcome_of(parent: Share, candidate: Share, parent_non_member: Share, candidate_non_member: Share, *,
               margin: float = DEFAULT_MARGIN) -> str:
    """The request's outcome at one FPR (module docstring)."""
    if candidate.n and candidate.ci_low > candidate_non_member.ci_high:
        return "still_flagged"
    if parent.n and parent.ci_low > parent_non_member.ci_high:
        return "removed"
    if parent.n and parent.ci_high <= parent_non_member.share + margin:
        return "not_memorised"
    return "inconclusive"


def combined_outcome(outcomes: Sequence[str]) -> str:
    """One outcome from several (OUTCOME_PRECEDENCE)."""
    return next(o for o in OUTCOME_PRECEDENCE if o in outcomes)


@dataclass(frozen=True)
class ReferenceOutputs:
    """The reference models' logits on one evaluation's samples.

    `forget_logits` [K, n, C] with `forget_out` [K, n] (True: out of that model's training half);
    `test_logits` [K, m, C] on the held-out non-members (out of every reference model).
    For the test of a person (`lethe.evaluation.per_person`): `forget_groups` [n], the subject group of
    each forget sample in the reference set (-1: none), and `null`, the set's null of real persons;
    `refusal`: why the set judges no person (a per-sample set), in one line, instead of them."""

    forget_logits: torch.Tensor
    forget_out: torch.Tensor
    test_logits: torch.Tensor
    forget_groups: torch.Tensor | None = None
    null: Any = None
    refusal: str | None = None

    @property
    def k(self) -> int:
        return int(self.forget_logits.shape[0])


@dataclass(frozen=True)
class PerExampleEvidence:
    """`evidence`: JSON-able (metrics.json); `scores`: role → split → z-scores [n] / [m] (for the plots);
    `thresholds`: FPR → role → score threshold."""

    evidence: dict
    scores: dict[str, dict[str, torch.Tensor]]
    thresholds: dict[float, dict[str, float]]


def split_non_members(m: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint halves of m held-out samples: (calibration, reported), seeded."""
    order = torch.randperm(m, generator=torch.Generator().manual_seed(seed))
    return order[: m // 2], order[m // 2:]


def _judge_persons(parent_logits: Mapping[str, torch.Tensor], candidate_logits: Mapping[str, torch.Tensor],
                   labels: Mapping[str, torch.Tensor], references: ReferenceOutputs,
                   reference_phi: Mapping[str, torch.Tensor], out: Mapping[str, torch.Tensor],
                   requests: Mapping[str, torch.Tensor], fprs: Sequence[float]
                   ) -> tuple[dict[str, Any], str | None]:
    """The person-level judgement (`lethe.evaluation.per_person`) of every request, or why there is none."""
    if references.refusal is not None:
        return {}, references.refusal
    if references.null is None or references.forget_groups is None:
        return {}, ("the reference outputs carry no null of persons (built without their reference set's "
                    "subject groups): no person is judged")

    try:
        entries, summary = judge_persons(parent_logits, candidate_logits, labels, reference_phi["forget"],
                                         out["forget"], reference_phi["test"], references.forget_groups,
                                         references.null, requests, fprs)
    except EvaluationError as exc:  # e.g. too few null persons for the smallest FPR
        return {}, f"no person is judged: {exc}"
    return {**summary, "requests": entries}, None


def per_example_evidence(
    parent_logits: Mapping[str, torch.Tensor],
    candidate_logits: Mapping[str, torch.Tensor],
    labels: Mapping[str, torch.Tensor],
    references: ReferenceOutputs,
    *,
    requests: Mapping[str, torch.Tensor] | None = None,
    fprs: Sequence[float] = PER_EXAMPLE_FPRS,
    margin: float = DEFAULT_MARGIN,
    seed: int = 0,
) -> PerExampleEvidence:
    """The test of every request: its person's statistic, p-values and outcome (`per_person`), and per
    sample the scores, thresholds and shares at each FPR (detail).

    `parent_logits`, `candidate_logits`, `labels`: "forget" [n, C] / [n] and "test" [m, C] / [m].
    `requests`: request id → indices into the forget samples (default: one request, "all", of every
    forget sample). Returns the JSON-able evidence and the per-sample scores (for the plots).
    Each request's entry keeps the shape the gate, the ledger and the certificates read: `outcome`,
    `summary`, `fpr` (per FPR: the per-sample shares and thresholds, and `person`: the person's threshold
    and whether each model is flagged there), plus `person` (statistics, p-values, decision level).
    """
    n, m = len(labels["forget"]), len(labels["test"])
    if references.forget_logits.shape[1] != n or references.test_logits.shape[1] != m:
        raise EvaluationError(f"the reference logits cover {references.forget_logits.shape[1]} forget and "
                              f"{references.test_logits.shape[1]} test samples; the evaluation has {n} and "
                              f"{m}")
    out = {"forget": references.forget_out.to(torch.bool),
           "test": torch.ones(references.test_logits.shape[:2], dtype=torch.bool)}
    reference_phi = {"forget": logit_confidence(references.forget_logits, labels["forget"]),
                     "test": logit_confidence(references.test_logits, labels["test"])}
    # One pooled variance for both splits, from every out entry: the scores share one scale.
    variance = pooled_variance(torch.cat([reference_phi["forget"], reference_phi["test"]], dim=1),
                               torch.cat([out["forget"], out["test"]], dim=1))
    calibration, reported = split_non_members(m, seed=seed)
    scores = {role: {split: scores_from_confidences(logit_confidence(logits[split], labels[split]),
                                                    reference_phi[split], out[split], variance=variance)
                     for split in ("forget", "test")}
              for role, logits in (("parent", parent_logits), ("candidate", candidate_logits))}
    thresholds = {f: {role: calibrate_threshold(scores[role]["test"][calibration], f) for role in scores}
                  for f in fprs}

    def shares_of(indices: torch.Tensor, f: float) -> dict[str, Share]:
        shares = {role: flagged_share(scores[role]["forget"][indices], thresholds[f][role])
                  for role in scores}
        shares.update({f"{role}_non_member": flagged_share(scores[role]["test"][reported],
                                                           thresholds[f][role]) for role in scores})
        return shares

    requests = {request_id: torch.as_tensor(indices, dtype=torch.int64) for request_id, indices in
                (requests if requests is not None else {"all": torch.arange(n)}).items()}
    per_request = {}
    for request_id, indices in requests.items():
        by_fpr = {}
        for f in fprs:
            shares = shares_of(indices, f)
            by_fpr[f"{f:g}"] = {
                "per_sample_outcome": outcome_of(shares["parent"], shares["candidate"],
                                                 shares["parent_non_member"], shares["candidate_non_member"],
                                                 margin=margin),
                "threshold": thresholds[f], **{k: v.to_dict() for k, v in shares.items()}}
        scored = int((~torch.isnan(scores["parent"]["forget"][indices])).sum())
        per_request[request_id] = {"num_samples": len(indices), "num_scored": scored, "fpr": by_fpr}
    person, refusal = _judge_persons(parent_logits, candidate_logits, labels, references, reference_phi,
                                     out, requests, fprs)
    for request_id, entry in per_request.items():
        if refusal is not None:
            entry.update(outcome="inconclusive", deciding_fpr=None,
                         summary="inconclusive: not judged as a person (the version's reference models "
                                 "cannot judge one; the gate's reason says why)")
            continue
        judged = person["requests"][request_id]
        entry.update(outcome=judged["outcome"], summary=judged["summary"],
                     deciding_fpr=judged["decision_level"], person=judged)
        for key, value in entry["fpr"].items():
            value["person"] = {"threshold": person["thresholds"][key], **judged["flagged"][key]}
    evidence = {
        "method": person["method"] if refusal is None else
        "offline LiRA per sample (no person judged: see `refused`)",
        "unit": "person" if refusal is None else None,
        "refused": refusal,
        "person": None,  # the person-level summary (below), when a person was judged
        "reference_models": references.k,
        "per_sample_method": "offline LiRA: logit-scaled confidence against reference models that did not "
                             "train on the sample, threshold at a fixed FPR on held-out non-members",
        "variance": ("pooled over samples" if references.k < 2 * MIN_OUT_MODELS_FOR_OWN_VARIANCE else
                     f"per sample where at least {MIN_OUT_MODELS_FOR_OWN_VARIANCE} models left it out"),
        "pooled_variance": variance,
        "fprs": [float(f) for f in fprs],
        "margin": margin,
        "non_members": {"calibration": len(calibration), "reported": len(reported)},
        "requests": per_request,
        # Every forget sample together (the run's figures for trackers; the outcome is per request).
        "overall": {f"{f:g}": {k: v.to_dict() for k, v in shares_of(torch.arange(n), f).items()}
                    for f in fprs},
        "outcome": combined_outcome([r["outcome"] for r in per_request.values()]),
        "outcome_counts": {o: sum(r["outcome"] == o for r in per_request.values()) for o in OUTCOMES},
    }
    if refusal is None:
        evidence["person"] = {k: v for k, v in person.items() if k not in ("requests", "method")}
    return PerExampleEvidence(evidence, scores, thresholds)
