"""The membership test of a person: one statistic per request, pooled over its samples (user-level LiRA).

GDPR erasure is about a person, and a person's images are correlated (same face, same trait), so the
unit of the test is the person, not the sample: user-level membership inference scores a user by
pooling their samples' per-example evidence (Song & Shmatikov, KDD 2019, arXiv 1811.00513; Kandpal et
al., "User Inference Attacks on Large Language Models", arXiv 2310.09266, who average per-sample
likelihood-ratio scores over a user's samples). The per-sample evidence is offline LiRA (Carlini et
al. 2022) against reference models that never met the person (U-LiRA, Hayes et al. arXiv 2403.01218,
judges unlearning the same way); the halves are drawn by subject (`lethe.audit.design`), so those
"out" models saw none of the person's other images either.

Per sample i of a person and a model t (the parent, the candidate, or a reference model playing the
target): φ = log p_y − log(1 − p_y); μ_i the mean φ of the reference models that left the person out.
The model's own relation to the references is fitted on held-out test samples (out of every reference
model and of t): φ_t ≈ a + b·μ, because a model trained on all the data is more confident than the
references trained on half, and more so on easy samples; an offset alone would leave that to the
threshold. The residual r_i = φ_t,i − a − b·μ_i has variance s² + b²σ²/n_out (s²: the model's own
deviation from the fit, σ²: the references' variance of φ per sample, pooled), so
z_i = r_i / sqrt(s² + b²σ²/n_out,i) is on one scale whatever the number of out models.

The person's statistic is T = Σ z_i / sqrt(v·Σ_g (n_g + n_g(n_g − 1)ρ)) over the groups g of the
reference set's subject map its samples belong to: ρ is the correlation of z between two samples of one
person under the null, v the variance of z. Pseudo-persons of independent held-out samples have ρ = 0
and a narrower null than real persons, so they would over-flag a model that never saw them; ρ and the
null itself come from real persons instead: each reference model in turn plays the target, and the
persons out of it are scored against the remaining out models (`person_null`). That empirical null of
real persons is computed from the stored reference logits alone (no forward pass) once per reference
set. Half of its persons set the thresholds at each FPR; the other half measure the non-member rate.

p-values are empirical where the null has at least `TAIL_COUNT` persons above the statistic, and come
from an exponential tail fitted to the null's top decile beyond (Knijnenburg et al., Bioinformatics
2009: a generalised-Pareto tail, here with shape 0, which is heavier than a Gaussian's).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from lethe.errors import EvaluationError
from lethe.evaluation.per_example import Share, logit_confidence, pooled_variance, wilson_interval

#: The group of a sample that no subject owns: it is a person of one sample.
NO_GROUP = -1
#: The null's persons above a statistic below which its p-value comes from the fitted tail.
TAIL_COUNT = 10
#: The share of the null (its top) that the exponential tail is fitted to.
TAIL_SHARE = 0.1


@dataclass(frozen=True)
class Calibration:
    """How one model's φ follows the references' mean φ on held-out samples: φ ≈ intercept + slope·μ,
    with `deviation` the variance of the model's own residual (the references' noise in μ removed)."""

    intercept: float
    slope: float
    deviation: float


def fit_calibration(target_phi: torch.Tensor, reference_phi: torch.Tensor, sample_variance: float
                    ) -> Calibration:
    """Least squares of the target's φ [m] on the references' mean φ [K, m] over held-out samples (out
    of every reference model); `sample_variance`: σ², the references' pooled variance of φ."""
    finite = torch.isfinite(target_phi) & torch.isfinite(reference_phi).all(dim=0)
    y, models = target_phi[finite].double(), reference_phi[:, finite].double()
    if len(y) < 3:
        raise EvaluationError("the person-level test needs at least 3 held-out samples to calibrate a model")
    x = models.mean(dim=0)
    x_centred = x - x.mean()
    spread = float((x_centred ** 2).sum())
    slope = float((x_centred * (y - y.mean())).sum()) / spread if spread > 0 else 1.0
    intercept = float(y.mean()) - slope * float(x.mean())
    residual = y - intercept - slope * x
    noise = slope ** 2 * sample_variance / models.shape[0]  # what the references' own noise adds
    deviation = max(float(residual.var()) - noise, 1e-6 * max(sample_variance, 1e-12))
    return Calibration(intercept, slope, deviation)


def sample_z(target_phi: torch.Tensor, reference_phi: torch.Tensor, out: torch.Tensor,
             calibration: Calibration, sample_variance: float) -> torch.Tensor:
    """z [n] of each sample (module docstring): the target's φ [n] against the mean of the reference
    models [K, n] that left it out (`out` [K, n]); NaN where none did."""
    out = out.to(torch.bool)
    counts = out.sum(dim=0)
    means = torch.where(out, reference_phi.double(), 0.0).sum(dim=0) / counts.clamp(min=1)
    residual = target_phi.double() - calibration.intercept - calibration.slope * means
    scale = torch.sqrt(calibration.deviation + calibration.slope ** 2 * sample_variance / counts.clamp(min=1))
    z = residual / scale
    return torch.where(counts > 0, z, torch.full_like(z, float("nan")))


def units(groups: torch.Tensor) -> torch.Tensor:
    """The person of each sample: its group, or (for a sample of no group) a unit of its own."""
    groups = groups.to(torch.int64)
    alone = groups == NO_GROUP
    top = int(groups.max()) + 1 if len(groups) else 0
    return torch.where(alone, top + torch.arange(len(groups)), groups)


def pooled(z: torch.Tensor, groups: torch.Tensor, correlation: float, variance: float) -> float:
    """T of one request: Σ z over its scored samples, standardised by the null variance of that sum for
    its groups' sizes (module docstring); NaN when no sample is scored."""
    scored = ~torch.isnan(z)
    if not bool(scored.any()):
        return float("nan")
    _, sizes = torch.unique(units(groups[scored]), return_counts=True)
    sizes = sizes.double()
    spread = variance * float((sizes + sizes * (sizes - 1) * correlation).sum())
    return float(z[scored].sum()) / math.sqrt(spread)


@dataclass(frozen=True)
class PersonNull:
    """The null of real persons: the statistic of every (reference model, person out of it) pair, each
    reference model playing the target against the others (`person_null`).

    `statistics` [P]; `owners` [P] the person of each pair; `calibration` [P] True for the persons (all
    their pairs) that set thresholds and p-values, the others measure the non-member rate;
    `correlation` (ρ) and `variance` (v) standardise a request's sum; `sample_variance` (σ²) is the
    references' pooled variance of φ."""

    statistics: torch.Tensor
    owners: torch.Tensor
    calibration: torch.Tensor
    correlation: float
    variance: float
    sample_variance: float
    persons: int
    reference_models: int

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
                "correlation": self.correlation, "variance": self.variance,
                "sample_variance": self.sample_variance}


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
    person = units(groups)
    sums, squares, sizes, owners = [], [], [], []
    for j in range(k):
        others = [i for i in range(k) if i != j]
        calibration = fit_calibration(test_phi[j], test_phi[others], sample_variance)
        rows = out[j] & out[others].any(dim=0)  # persons out of model j and of at least one other
        if not bool(rows.any()):
            continue
        z = sample_z(phi[j, rows], phi[others][:, rows], out[others][:, rows], calibration, sample_variance)
        owner, index = torch.unique(person[rows], return_inverse=True)
        sums.append(torch.zeros(len(owner), dtype=torch.float64).index_add_(0, index, z))
        squares.append(torch.zeros(len(owner), dtype=torch.float64).index_add_(0, index, z * z))
        sizes.append(torch.zeros(len(owner), dtype=torch.float64).index_add_(0, index, torch.ones_like(z)))
        owners.append(owner)
    if not sums:
        raise EvaluationError(f"the {k} reference models leave no person out of two of them: no null of "
                              "persons (prepare at least 4 reference models)")
    total, square, size, owner = (torch.cat(x) for x in (sums, squares, sizes, owners))
    variance = float(square.sum() / size.sum())
    pairs = size > 1
    within = float((total[pairs] ** 2 - square[pairs]).sum())
    pair_count = float((size[pairs] * (size[pairs] - 1)).sum())
    correlation = within / (variance * pair_count) if pair_count else 0.0
    correlation = min(max(correlation, 0.0), 0.99)
    statistics = total / torch.sqrt(variance * (size + size * (size - 1) * correlation))
    # Half of the persons (with every model they were out of) calibrate, the other half report.
    persons = torch.unique(owner)
    order = torch.randperm(len(persons), generator=torch.Generator().manual_seed(seed))
    calibrating = torch.zeros(int(persons.max()) + 1, dtype=torch.bool)
    calibrating[persons[order[: len(persons) // 2]]] = True
    return PersonNull(statistics=statistics, owners=owner, calibration=calibrating[owner],
                      correlation=correlation,
                      variance=variance, sample_variance=sample_variance, persons=len(persons),
                      reference_models=k)


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
    z = {}
    calibrations = {}
    for role, logits in (("parent", parent), ("candidate", candidate)):
        calibrations[role] = fit_calibration(logit_confidence(logits["test"], labels["test"]),
                                             reference_test_phi, null.sample_variance)
        z[role] = sample_z(logit_confidence(logits["forget"], labels["forget"]), reference_forget_phi,
                           forget_out, calibrations[role], null.sample_variance)
    thresholds = {f"{f:g}": null.threshold(f) for f in fprs}
    level = decision_level(list(fprs), len(requests))
    entries: dict[str, dict[str, Any]] = {}
    for request_id, rows in requests.items():
        rows = torch.as_tensor(rows, dtype=torch.int64)
        statistic = {role: pooled(z[role][rows], groups[rows], null.correlation, null.variance) for role in z}
        p = {role: null.p_value(value) for role, value in statistic.items()}
        outcome = person_outcome(p["parent"], p["candidate"], level, max(fprs))
        scored = rows[~torch.isnan(z["parent"][rows])]
        subjects = int(torch.unique(units(groups[scored])).numel()) if len(scored) else 0
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
        "method": "user-level offline LiRA: the mean of a person's per-sample z-scores against reference "
                  "models that never met them (halves drawn by subject), each model calibrated on held-out "
                  "samples, standardised for correlated samples, against a null of real persons (each "
                  "reference model as the target)",
        "null": null.describe(),
        "thresholds": thresholds,
        "non_member_rate": {key: null.non_member_share(value).to_dict() for key, value in thresholds.items()},
        "decision_level": level,
        "deciding": DECIDING,
        "calibration": {role: asdict(c) for role, c in calibrations.items()},
    }
    return entries, summary
