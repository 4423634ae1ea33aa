"""The membership test of a person: one statistic per request, pooled over its samples (user-level LiRA).

GDPR erasure is about a person, and a person's images are correlated (same face, same trait), so the
unit of the test is the person, not the sample: user-level membership inference scores a user by
pooling their samples' evidence (Song & Shmatikov, KDD 2019, arXiv 1811.00513; Kandpal et al., "User
Inference Attacks on Large Language Models", arXiv 2310.09266, who average per-sample likelihood-ratio
scores over a user's samples). The evidence is offline LiRA (Carlini et al. 2022) against reference
models that never met the person (U-LiRA, Hayes et al. arXiv 2403.01218, judges unlearning the same
way); the halves are drawn by subject (`lethe.audit.design`), so those "out" models saw none of the
person's other images either.

The statistic, for a person (a unit: the samples of one subject group that share their out models)
and a model t (the parent, the candidate, or a reference model playing the target):
- φ = log p_y − log(1 − p_y) per sample; the person's mean φ̄ under t and under each reference model k
  that left the person out (m of them), and M, the mean of those.
- t's own relation to the references, fitted on held-out test samples (out of every reference and of
  t): φ_t ≈ a + b·μ (`fit_calibration`). A model trained on all the data is more confident than
  references trained on half, and more so on easy samples; it also drops a scale (b) that a model
  trained on cleaner or noisier data has.
- R = φ̄_t − a − b·M; under the null (t never met the person) its variance is b²τ²(1 + 1/m) + e²/n,
  with τ² the variance of the person's mean φ̄ from one reference model to another, e² t's own
  deviation from the fit per sample. T = R / sqrt(that).
- τ² is the person's own: persons differ (the reference models agree on an ordinary person and
  disagree widely on one with a trait some of them picked up), and a pooled variance would over-flag
  the second kind. With m out models the person's sample variance s² has m − 1 degrees of freedom, too
  few alone, so it is moderated towards a prior (empirical Bayes, Smyth 2004, the moderated t of
  limma): τ̂² = (ν₀·τ₀²(n) + (m − 1)·s²) / (ν₀ + m − 1). The prior's mean τ₀²(n) = σ²·(ρ + (1 − ρ)/n)
  follows the person's size n through ρ, the correlation of two samples of one person (σ²: the
  references' per-sample variance of φ); ν₀ and the prior's scale are fitted to the spread of the
  persons' log s² (Smyth's moments).
- A request of several units (samples of several subjects, or of none) pools them: the mean residual
  over its samples against the variance of that mean.

Pseudo-persons of independent held-out samples would have ρ = 0 and a narrower null than real persons,
and over-flag a model that never saw them. The null comes from real persons instead: each reference
model in turn plays the target, and the persons out of it are scored against the remaining out models
(`person_null`), from the stored reference logits alone (no forward pass), once per reference set. Half
of its persons set the thresholds at each FPR and the p-values; the other half measure the non-member
rate. p-values are empirical where the null has at least `TAIL_COUNT` persons above the statistic, and
come from an exponential tail fitted to the null's top decile beyond (Knijnenburg et al.,
Bioinformatics 2009: a generalised-Pareto tail, here with shape 0, heavier than a Gaussian's).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from lethe.errors import EvaluationError
from lethe.evaluation.confidence import Share, logit_confidence, pooled_variance, wilson_interval
from lethe.evaluation.person_statistic import (  # noqa: F401 (the statistic's names, read from here too)
    NO_GROUP,
    Calibration,
    Persons,
    Prior,
    fit_calibration,
    fit_prior,
    pooled,
    request_statistic,
    unit_terms,
    units,
)

#: The null's persons above a statistic below which its p-value comes from the fitted tail.
TAIL_COUNT = 10
#: The share of the null (its top) that the exponential tail is fitted to.
TAIL_SHARE = 0.1


@dataclass(frozen=True)
class PersonNull:
    """The null of real persons: the statistic of every (reference model, person out of it) pair, each
    reference model playing the target against the others (`person_null`).

    `statistics` [P]; `owners` [P] the person of each pair; `calibration` [P] True for the persons (all
    their pairs) that set thresholds and p-values, the others measure the non-member rate; `prior`: the
    moderated variance's prior, fitted on every person with all its out models."""

    statistics: torch.Tensor
    owners: torch.Tensor
    calibration: torch.Tensor
    prior: Prior
    persons: int
    reference_models: int

    @property
    def sample_variance(self) -> float:
        return self.prior.sample_variance

    def calibrating(self) -> torch.Tensor:
        return self.statistics[self.calibration]

    def threshold(self, fpr: float) -> float:
        """The statistic above which a share `fpr` of the calibration persons lies."""
        if not 0 < fpr < 1:
            raise EvaluationError(f"the false-positive rate must be in (0, 1), got {fpr}")
        values = self.calibrating()
        if len(values) < math.ceil(1 / fpr):
            raise EvaluationError(f"calibrating at {fpr:.0%} FPR over persons needs at least "
                                  f"{math.ceil(1 / fpr)} null persons, got {len(values)}")
        return float(torch.quantile(values, 1 - fpr, interpolation="higher"))

    def p_value(self, statistic: float) -> float:
        """P(T ≥ statistic) for a person no model trained on: empirical, or from the fitted tail."""
        if math.isnan(statistic):
            return float("nan")
        values = self.calibrating()
        above = int((values >= statistic).sum())
        if above >= TAIL_COUNT:
            return (above + 1) / (len(values) + 1)
        cut = float(torch.quantile(values, 1 - TAIL_SHARE))
        excess = values[values > cut] - cut
        scale = float(excess.mean()) if len(excess) else 1.0
        tail = TAIL_SHARE * math.exp(-max(statistic - cut, 0.0) / max(scale, 1e-12))
        return min(tail, (above + 1) / (len(values) + 1))

    def non_member_share(self, threshold: float) -> Share:
        """The share of the reported null pairs above `threshold`, with a 95% Wilson interval as wide as
        the reported persons allow (a person's pairs with several models are not independent draws)."""
        reported = ~self.calibration
        pairs, flagged = int(reported.sum()), int((self.statistics[reported] > threshold).sum())
        persons = int(torch.unique(self.owners[reported]).numel())
        share = flagged / pairs if pairs else float("nan")
        low, high = wilson_interval(round(share * persons) if pairs else 0, persons)
        return Share(flagged, pairs, share, low, high)

    def describe(self) -> dict[str, float | int]:
        return {"persons": self.persons, "pairs": len(self.statistics),
                "calibration_pairs": int(self.calibration.sum()),
                "reported_pairs": int((~self.calibration).sum()), "reference_models": self.reference_models,
                "sample_variance": self.prior.sample_variance, "correlation": self.prior.correlation,
                "prior_scale": self.prior.scale,
                "prior_dof": None if math.isinf(self.prior.dof) else self.prior.dof}  # None: no moderation


def person_null(train_logits: torch.Tensor, train_labels: torch.Tensor, membership: torch.Tensor,
                groups: torch.Tensor, test_logits: torch.Tensor, test_labels: torch.Tensor, *,
                seed: int = 0) -> PersonNull:
    """The null of real persons from a reference set alone (module docstring).

    `train_logits` [K, N, C], `train_labels` [N], `membership` [K, N] (True: in model k's half),
    `groups` [N] (NO_GROUP: a person of one sample), `test_logits` [K, M, C], `test_labels` [M]."""
    k = int(train_logits.shape[0])
    phi = logit_confidence(train_logits, train_labels)  # [K, N]
    test_phi = logit_confidence(test_logits, test_labels)  # [K, M]
    out = ~membership.to(torch.bool)
    sample_variance = pooled_variance(torch.cat([phi, test_phi], dim=1),
                                      torch.cat([out, torch.ones_like(test_phi, dtype=torch.bool)], dim=1))
    persons = Persons.of(phi, out, groups)
    _, squares, m = persons.spread()
    # Each sample's own variance between the models that left it out, averaged per person.
    counts = out.sum(dim=0)
    centre = torch.where(out, phi, 0.0).sum(dim=0) / counts.clamp(min=1)
    own = torch.where(out, (phi - centre) ** 2, 0.0).sum(dim=0) / (counts - 1).clamp(min=1)
    within = torch.zeros(len(persons.sizes), dtype=torch.float64).index_add_(0, persons.index, own.double())
    prior = fit_prior(squares, m - 1, persons.sizes, within / persons.sizes, sample_variance)
    statistics, owners = [], []
    for j in range(k):
        others = [i for i in range(k) if i != j]
        chosen = persons.out[j] & persons.out[others].any(dim=0)  # out of j and of at least one other
        if not bool(chosen.any()):
            continue
        calibration = fit_calibration(test_phi[j], test_phi[others], sample_variance)
        loo = Persons(persons.index, persons.sizes[chosen], persons.out[others][:, chosen],
                      persons.means[others][:, chosen])
        target = persons.means[j, chosen]
        centre, squares_j, m_j = loo.spread()
        tau2 = prior.moderated(squares_j, (m_j - 1).clamp(min=0), loo.sizes)
        residual = target - calibration.intercept - calibration.slope * centre
        variance = (calibration.slope ** 2 * tau2 * (1 + 1 / m_j.clamp(min=1))
                    + calibration.deviation / loo.sizes)
        statistics.append(residual / torch.sqrt(variance))
        owners.append(chosen.nonzero().flatten())
    if not statistics:
        raise EvaluationError(f"the {k} reference models leave no person out of two of them: no null of "
                              "persons (prepare at least 4 reference models)")
    statistic, owner = torch.cat(statistics), torch.cat(owners)
    # Half of the persons (with every model they were out of) calibrate, the other half report.
    everyone = torch.unique(owner)
    order = torch.randperm(len(everyone), generator=torch.Generator().manual_seed(seed))
    calibrating = torch.zeros(len(persons.sizes), dtype=torch.bool)
    calibrating[everyone[order[: len(everyone) // 2]]] = True
    return PersonNull(statistics=statistic, owners=owner, calibration=calibrating[owner], prior=prior,
                      persons=len(everyone), reference_models=k)


# --- judging the requests of one evaluation ------------------------------------------------------------

#: The outcome of a request, from the p-values of its person statistic (module docstring of per_example
#: for the words): decided at the run's family-wise level, so that a model no one trained on the run's
#: persons is refused with probability at most min(FPRs), however many requests the run judges.
DECIDING = "family-wise: the smallest FPR over the number of requests judged (Bonferroni)"


def decision_level(fprs: tuple[float, ...] | list[float], requests: int) -> float:
    """The p-value at or below which a request's person is flagged: min(fprs) / requests."""
    return min(fprs) / max(requests, 1)


def person_outcome(parent_p: float, candidate_p: float, level: float, not_memorised_above: float) -> str:
    """`still_flagged` (the candidate's p ≤ level), else `removed` (the parent's p ≤ level), else
    `not_memorised` (the parent's p above the largest FPR: it scored the person like persons no model
    trained on), else `inconclusive` (some evidence, not enough; or nothing scored)."""
    if not math.isnan(candidate_p) and candidate_p <= level:
        return "still_flagged"
    if math.isnan(parent_p):
        return "inconclusive"
    if parent_p <= level:
        return "removed"
    if parent_p > not_memorised_above:
        return "not_memorised"
    return "inconclusive"


def _p(value: float) -> str:
    if math.isnan(value):
        return "p n/a"
    return f"p = {value:.2g}" if value >= 1e-4 else "p < 0.0001"


def person_words(outcome: str, parent: float, candidate: float, parent_p: float, candidate_p: float,
                 level: float, fpr: float, requests: int) -> str:
    """One sentence a reviewer or a data subject can read."""
    at = (f"the decision level is p ≤ {level:.2g} ({fpr:.0%} false positives over persons"
          + (f", shared by the run's {requests} requests)" if requests > 1 else ")"))
    if outcome == "still_flagged":
        return (f"still flagged: the candidate scores this person at {candidate:.2f} against reference "
                f"models that never met them ({_p(candidate_p)}; {at}); the person is not forgotten")
    if outcome == "removed":
        return (f"removed: before erasure the parent scored this person at {parent:.2f} ({_p(parent_p)}), "
                f"as a model that trained on them; the candidate scores them at {candidate:.2f} "
                f"({_p(candidate_p)}), like persons no model trained on ({at})")
    if outcome == "not_memorised":
        return (f"not memorised before erasure: the parent scored this person at {parent:.2f} "
                f"({_p(parent_p)}), like persons no model trained on; this is no evidence of a removal, and "
                "none was needed")
    return (f"inconclusive: the parent scored this person at {parent:.2f} ({_p(parent_p)}), above most "
            f"persons no model trained on but not beyond the decision level ({at}); the candidate scores "
            f"them at {candidate:.2f} ({_p(candidate_p)})")


def judge_persons(parent: Mapping[str, torch.Tensor], candidate: Mapping[str, torch.Tensor],
                  labels: Mapping[str, torch.Tensor], reference_forget_phi: torch.Tensor,
                  forget_out: torch.Tensor, reference_test_phi: torch.Tensor, groups: torch.Tensor,
                  null: PersonNull, requests: Mapping[str, torch.Tensor], fprs: Sequence[float]
                  ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Each request's person statistic, p-values, flags at each FPR and outcome, for both models.

    `parent` / `candidate`: logits "forget" [n, C] and "test" [m, C]; `labels` likewise; the references'
    φ on the forget [K, n] and test [K, m] samples, `forget_out` [K, n], `groups` [n] (the reference set's
    subject groups of the forget samples). Returns (request id → its entry, the evidence's summary)."""
    calibrations = {role: fit_calibration(logit_confidence(logits["test"], labels["test"]),
                                          reference_test_phi, null.sample_variance)
                    for role, logits in (("parent", parent), ("candidate", candidate))}
    phi = {role: logit_confidence(logits["forget"], labels["forget"])
           for role, logits in (("parent", parent), ("candidate", candidate))}
    thresholds = {f"{f:g}": null.threshold(f) for f in fprs}
    level = decision_level(list(fprs), len(requests))
    entries: dict[str, dict[str, Any]] = {}
    for request_id, rows in requests.items():
        rows = torch.as_tensor(rows, dtype=torch.int64)
        persons = Persons.of(reference_forget_phi[:, rows], forget_out[:, rows], groups[rows])
        statistic = {role: pooled(*unit_terms(phi[role][rows], persons, calibrations[role], null.prior),
                                  persons.sizes) for role in phi}
        p = {role: null.p_value(value) for role, value in statistic.items()}
        outcome = person_outcome(p["parent"], p["candidate"], level, max(fprs))
        scored = persons.out.any(dim=0)
        subjects = int(torch.unique(units(groups[rows])[scored[persons.index]]).numel())
        entries[request_id] = {
            "outcome": outcome,
            "summary": person_words(outcome, statistic["parent"], statistic["candidate"], p["parent"],
                                    p["candidate"], level, min(fprs), len(requests)),
            "statistic": statistic, "p_value": p, "decision_level": level, "subjects": subjects,
            "flagged": {key: {role: bool(statistic[role] > value) for role in statistic}
                        for key, value in thresholds.items()},
        }
    summary = {
        "unit": "person",
        "method": "user-level offline LiRA: a person's mean logit confidence against the reference models "
                  "that never met them (halves drawn by subject), each model calibrated on held-out samples, "
                  "over the person's own moderated variance between reference models, against a null of "
                  "real persons (each reference model in turn the target)",
        "null": null.describe(),
        "thresholds": thresholds,
        "non_member_rate": {key: null.non_member_share(value).to_dict() for key, value in thresholds.items()},
        "decision_level": level,
        "deciding": DECIDING,
        "calibration": {role: asdict(c) for role, c in calibrations.items()},
    }
    return entries, summary
