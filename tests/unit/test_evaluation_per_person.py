"""The membership test of a person (lethe.evaluation.per_person) on a toy with correlated persons.

Confidences are drawn, not trained: a person's samples share a person-by-model effect (the trait a
model happens to pick up or not), so their scores are correlated. The null of real persons (each
reference model as the target) must hold its false-positive rate on a new model that never met
anyone, even one trained differently (more confident: it saw all the data); pseudo-persons of
independent samples would not.
"""

from __future__ import annotations

import math

import pytest
import torch

from lethe.audit.design import NO_GROUP as DESIGN_NO_GROUP
from lethe.audit.design import membership_design
from lethe.errors import EvaluationError
from lethe.evaluation.per_person import (
    NO_GROUP,
    fit_calibration,
    person_null,
    person_outcome,
    pooled,
    sample_z,
)

K, PERSONS, SIZE, HELD_OUT = 8, 600, 10, 3000
TRAIT, NOISE = 0.6, 0.7  # sd of the person-by-model effect and of each sample's own noise


def _logits(phi: torch.Tensor) -> torch.Tensor:
    """Two-class logits whose logit confidence in class 0 is exactly `phi`."""
    return torch.stack([phi, torch.zeros_like(phi)], dim=-1)


@pytest.fixture(scope="module")
def toy() -> dict:
    generator = torch.Generator().manual_seed(0)
    groups = torch.arange(PERSONS).repeat_interleave(SIZE)
    membership = membership_design(K, len(groups), seed=1, groups=groups)
    base = torch.randn(len(groups), generator=generator) * 2 + 2  # how easy each sample is
    held_out_base = torch.randn(HELD_OUT, generator=generator) * 2 + 2

    def models(count: int, easy: torch.Tensor, person: torch.Tensor) -> torch.Tensor:
        trait = torch.randn(count, int(person.max()) + 1, generator=generator) * TRAIT
        return easy + trait[:, person] + torch.randn(count, len(easy), generator=generator) * NOISE

    phi = models(K, base, groups) + 1.0 * membership  # a model is more confident on what it trained on
    held_out = models(K, held_out_base, torch.arange(HELD_OUT))
    zeros = torch.zeros(len(groups), dtype=torch.int64)
    null = person_null(_logits(phi), zeros, membership, groups, _logits(held_out),
                       torch.zeros(HELD_OUT, dtype=torch.int64))
    # A new model that never met anyone, trained otherwise (more confident overall, more on easy samples).
    target = 0.5 + 1.1 * models(1, base, groups)[0]
    target_held_out = 0.5 + 1.1 * models(1, held_out_base, torch.arange(HELD_OUT))[0]
    calibration = fit_calibration(target_held_out, held_out, null.sample_variance)
    return {"groups": groups, "membership": membership, "phi": phi, "null": null, "target": target,
            "calibration": calibration}


def _statistics(toy: dict, target: torch.Tensor, *, correlation: float | None = None) -> torch.Tensor:
    """Every person's statistic: `pooled` over one group of SIZE samples each, in one pass."""
    null, groups = toy["null"], toy["groups"]
    z = sample_z(target, toy["phi"], ~toy["membership"], toy["calibration"], null.sample_variance)
    rho = null.correlation if correlation is None else correlation
    sums = torch.zeros(PERSONS, dtype=torch.float64).index_add_(0, groups, z)
    return sums / math.sqrt(null.variance * (SIZE + SIZE * (SIZE - 1) * rho))


def test_the_null_of_real_persons_measures_their_correlation(toy) -> None:
    null = toy["null"]
    expected = TRAIT ** 2 / (TRAIT ** 2 + NOISE ** 2)  # the share of a sample's spread its person shares
    assert null.correlation == pytest.approx(expected, abs=0.1)
    assert null.persons == PERSONS and null.reference_models == K
    # Each person is out of K/2 models: every (model, person out of it) pair is in the null.
    assert len(null.statistics) == PERSONS * K // 2
    assert null.variance == pytest.approx(1.0, abs=0.1)


def test_the_null_holds_its_false_positive_rate_on_a_model_that_met_no_one(toy) -> None:
    null, target = toy["null"], toy["target"]
    # The model's own relation to the references, fitted on held-out samples: φ ≈ 0.5 + 1.1 μ.
    assert toy["calibration"].slope == pytest.approx(1.1, abs=0.05)
    statistics = _statistics(toy, target)
    for fpr in (0.01, 0.05):
        flagged = int((statistics > null.threshold(fpr)).sum())
        assert flagged <= 3 * fpr * PERSONS, (fpr, flagged)  # binomial(600, fpr): far below 3× its mean
        reported = null.non_member_share(null.threshold(fpr))
        assert reported.ci_low <= fpr <= reported.ci_high
    # Pseudo-persons of independent samples (no correlation) have a narrower null: they over-flag.
    naive = _statistics(toy, target, correlation=0.0)
    assert float((naive > 2.326).double().mean()) > 0.05  # N(0, 1)'s 1% threshold flags many more


def test_members_score_higher_and_a_memorised_person_is_flagged(toy) -> None:
    null = toy["null"]
    member = toy["target"] + 1.0  # trained on everyone: more confident on all their samples
    assert float(_statistics(toy, member).mean()) > float(_statistics(toy, toy["target"]).mean()) + 1.0
    memorised = toy["target"].clone()
    memorised[toy["groups"] == 0] += 4.0  # one person's samples memorised
    statistic = _statistics(toy, memorised)[0]
    assert statistic > null.threshold(0.01)
    assert null.p_value(float(statistic)) < 0.01 / 60  # beyond even a run of 60 requests' decision level
    assert null.p_value(float(_statistics(toy, toy["target"]).median())) > 0.2


def test_p_values_beyond_the_null_come_from_a_fitted_tail_and_shrink(toy) -> None:
    null = toy["null"]
    top = float(null.calibrating().max())
    p = [null.p_value(top + step) for step in (0.0, 1.0, 3.0)]
    assert p[0] > p[1] > p[2] > 0
    assert p[0] <= 11 / (int(null.calibration.sum()) + 1)
    assert math.isnan(null.p_value(float("nan")))
    with pytest.raises(EvaluationError, match="at least 2000"):
        null.threshold(0.0005)


def test_a_request_of_several_persons_pools_them_as_independent_groups(toy) -> None:
    z = torch.ones(6, dtype=torch.float64)
    one = pooled(z, torch.zeros(6, dtype=torch.int64), 0.5, 1.0)
    three = pooled(z, torch.tensor([0, 0, 1, 1, 2, 2]), 0.5, 1.0)
    alone = pooled(z, torch.full((6,), NO_GROUP), 0.5, 1.0)
    assert one == pytest.approx(6 / math.sqrt(6 + 30 * 0.5))
    assert three == pytest.approx(6 / math.sqrt(3 * (2 + 2 * 0.5)))
    assert alone == pytest.approx(6 / math.sqrt(6)) and one < three < alone
    assert math.isnan(pooled(torch.full((3,), float("nan")), torch.zeros(3, dtype=torch.int64), 0.5, 1.0))
    assert NO_GROUP == DESIGN_NO_GROUP
    # The one-pass statistic of the other tests is `pooled`'s.
    null = toy["null"]
    z = sample_z(toy["target"], toy["phi"], ~toy["membership"], toy["calibration"], null.sample_variance)
    first = toy["groups"] == 0
    assert _statistics(toy, toy["target"])[0].item() == pytest.approx(
        pooled(z[first], toy["groups"][first], null.correlation, null.variance))


def test_the_outcome_of_a_person() -> None:
    level = 0.01 / 20
    assert person_outcome(1e-6, 1e-5, level, 0.05) == "still_flagged"
    assert person_outcome(1e-6, 0.3, level, 0.05) == "removed"
    assert person_outcome(0.4, 0.4, level, 0.05) == "not_memorised"
    assert person_outcome(0.02, 0.4, level, 0.05) == "inconclusive"  # some evidence, not enough
    assert person_outcome(float("nan"), float("nan"), level, 0.05) == "inconclusive"
