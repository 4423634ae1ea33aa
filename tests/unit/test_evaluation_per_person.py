"""The membership test of a person (lethe.evaluation.per_person) on a toy with correlated persons.

Confidences are drawn, not trained: a person's samples share a person-by-model effect (the trait a
model happens to pick up or not), so their confidences are correlated; for a tenth of the persons that
effect is three times larger (a trait the models disagree on). The null of real persons (each reference
model as the target) must hold its false-positive rate on a new model that never met anyone, even one
trained otherwise (more confident: it saw all the data); pseudo-persons of independent samples do not.
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
    Persons,
    fit_calibration,
    person_null,
    person_outcome,
    pooled,
    request_statistic,
    unit_terms,
)

K, PERSONS, SIZE, HELD_OUT = 8, 600, 10, 3000
TRAIT, NOISE = 0.6, 0.7  # sd of the person-by-model effect and of each sample's own noise
WIDE = PERSONS // 10  # persons 0..WIDE-1: a trait the models disagree on (3× the effect)


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
    spread = torch.where(torch.arange(PERSONS) < WIDE, 3 * TRAIT, TRAIT)

    def models(count: int, easy: torch.Tensor, person: torch.Tensor, trait: torch.Tensor) -> torch.Tensor:
        effect = torch.randn(count, len(trait), generator=generator) * trait
        return easy + effect[:, person] + torch.randn(count, len(easy), generator=generator) * NOISE

    phi = models(K, base, groups, spread) + 1.0 * membership  # more confident on what it trained on
    held_out = models(K, held_out_base, torch.arange(HELD_OUT), torch.full((HELD_OUT,), TRAIT))
    null = person_null(_logits(phi), torch.zeros(len(groups), dtype=torch.int64), membership, groups,
                       _logits(held_out), torch.zeros(HELD_OUT, dtype=torch.int64))
    # A new model that never met anyone, trained otherwise (more confident overall, more on easy samples).
    target = 0.5 + 1.1 * models(1, base, groups, spread)[0]
    target_held_out = 0.5 + 1.1 * models(1, held_out_base, torch.arange(HELD_OUT),
                                         torch.full((HELD_OUT,), TRAIT))[0]
    calibration = fit_calibration(target_held_out, held_out, null.sample_variance)
    persons = Persons.of(phi, ~membership, groups)
    return {"groups": groups, "membership": membership, "phi": phi, "held_out": held_out, "null": null,
            "target": target, "calibration": calibration, "persons": persons}


def _statistics(toy: dict, target: torch.Tensor, *, null=None) -> torch.Tensor:
    """Every person's statistic (one unit each), in one pass."""
    null = null or toy["null"]
    residual, variance = unit_terms(target, toy["persons"], toy["calibration"], null.prior)
    return residual / variance.sqrt()


def test_the_null_of_real_persons_measures_their_correlation_and_spread(toy) -> None:
    null = toy["null"]
    ordinary = TRAIT ** 2 / (TRAIT ** 2 + NOISE ** 2)  # the share of a sample's spread its person shares
    assert ordinary - 0.05 < null.prior.correlation < ordinary + 0.25  # the wide persons add some
    assert null.persons == PERSONS and null.reference_models == K
    assert len(null.statistics) == PERSONS * K // 2  # every (model, person out of it) pair
    assert 1 < null.prior.dof < 50  # persons differ: their own variance counts, moderated
    # A wide person's moderated variance is wider than an ordinary person's, on average.
    _, variance = unit_terms(toy["target"], toy["persons"], toy["calibration"], null.prior)
    assert float(variance[:WIDE].mean()) > 2 * float(variance[WIDE:].mean())


def test_the_null_holds_its_false_positive_rate_on_a_model_that_met_no_one(toy) -> None:
    null, target = toy["null"], toy["target"]
    # The model's own relation to the references, fitted on held-out samples: φ ≈ 0.5 + 1.1 μ.
    assert toy["calibration"].slope == pytest.approx(1.1, abs=0.05)
    statistics = _statistics(toy, target)
    for fpr in (0.01, 0.05):
        flagged = int((statistics > null.threshold(fpr)).sum())
        assert flagged <= 2.5 * fpr * PERSONS, (fpr, flagged)  # binomial(600, fpr): far below 2.5× its mean
        assert int((statistics[:WIDE] > null.threshold(fpr)).sum()) <= max(3, 2.5 * fpr * WIDE)
        reported = null.non_member_share(null.threshold(fpr))
        assert reported.ci_low <= fpr <= reported.ci_high
    # Pseudo-persons of independent samples (each its own unit, in the null too) have a narrower null.
    alone = torch.full_like(toy["groups"], NO_GROUP)
    pseudo = person_null(_logits(toy["phi"]), torch.zeros(len(alone), dtype=torch.int64), toy["membership"],
                         alone, _logits(toy["held_out"]), torch.zeros(HELD_OUT, dtype=torch.int64))
    naive = torch.tensor([request_statistic(target[rows], toy["phi"][:, rows], ~toy["membership"][:, rows],
                                            alone[rows], toy["calibration"], pseudo.prior)
                          for rows in (torch.arange(SIZE) + SIZE * p for p in range(PERSONS))])
    assert float((naive > pseudo.threshold(0.01)).double().mean()) > 0.05  # many more than 1%


def test_members_score_higher_and_a_memorised_person_is_flagged(toy) -> None:
    null = toy["null"]
    member = toy["target"] + 1.0  # trained on everyone: more confident on all their samples
    assert float(_statistics(toy, member).mean()) > float(_statistics(toy, toy["target"]).mean()) + 1.0
    memorised = toy["target"].clone()
    memorised[toy["groups"] == PERSONS - 1] += 6.0  # one ordinary person's samples memorised
    statistic = float(_statistics(toy, memorised)[-1])
    assert statistic > null.threshold(0.01)
    assert null.p_value(statistic) < 0.01 / 60  # beyond even a run of 60 requests' decision level
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


def test_a_request_of_several_persons_pools_their_samples(toy) -> None:
    residual = torch.tensor([1.0, 1.0, float("nan")], dtype=torch.float64)
    variance = torch.tensor([1.0, 4.0, 1.0], dtype=torch.float64)
    sizes = torch.tensor([2.0, 6.0, 3.0], dtype=torch.float64)
    # The mean residual over the 8 scored samples (1.0) over its sd sqrt((4·1 + 36·4) / 64).
    assert pooled(residual, variance, sizes) == pytest.approx(1.0 / math.sqrt(148 / 64))
    assert math.isnan(pooled(residual[2:], variance[2:], sizes[2:]))
    # One person through `request_statistic` is that person's unit.
    null, groups = toy["null"], toy["groups"]
    rows = (groups == 3).nonzero().flatten()
    one = request_statistic(toy["target"][rows], toy["phi"][:, rows], ~toy["membership"][:, rows],
                            groups[rows], toy["calibration"], null.prior)
    assert one == pytest.approx(float(_statistics(toy, toy["target"])[3]))
    assert NO_GROUP == DESIGN_NO_GROUP


def test_the_outcome_of_a_person() -> None:
    level = 0.01 / 20
    assert person_outcome(1e-6, 1e-5, level, 0.05) == "still_flagged"
    assert person_outcome(1e-6, 0.3, level, 0.05) == "removed"
    assert person_outcome(0.4, 0.4, level, 0.05) == "not_memorised"
    assert person_outcome(0.02, 0.4, level, 0.05) == "inconclusive"  # some evidence, not enough
    assert person_outcome(float("nan"), float("nan"), level, 0.05) == "inconclusive"
