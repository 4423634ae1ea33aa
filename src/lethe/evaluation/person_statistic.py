"""The statistic of a person (`per_person` explains it): a unit's residual against the reference
models that left it out, its null variance with the person's own between-model variance moderated
towards an empirical-Bayes prior (Smyth 2004), and the pooled T of a request."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lethe.errors import EvaluationError

#: The group of a sample that no subject owns: it is a person of one sample.
NO_GROUP = -1


@dataclass(frozen=True)
class Calibration:
    """How one model's φ follows the references' mean φ on held-out samples: φ ≈ intercept + slope·μ,
    with `deviation` the variance of the model's own residual beyond a scaled reference model's."""

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
    # What a scaled reference model would leave: its own spread and the references' noise in μ.
    family = slope ** 2 * sample_variance * (1 + 1 / models.shape[0])
    return Calibration(intercept, slope, max(float(residual.var()) - family, 0.0))


@dataclass(frozen=True)
class Prior:
    """The prior of a person's reference variance τ²: mean `scale`·σ²·(ρ + (1 − ρ)/n) for a person of n
    samples (`sample_variance` σ², `correlation` ρ), with `dof` ν₀ degrees of freedom (inf: every
    person gets the prior's variance)."""

    sample_variance: float
    correlation: float
    scale: float
    dof: float

    def mean(self, sizes: torch.Tensor) -> torch.Tensor:
        sizes = sizes.double()
        return self.scale * self.sample_variance * (self.correlation + (1 - self.correlation) / sizes)

    def moderated(self, squares: torch.Tensor, dof: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        """τ̂² of persons with `squares` Σ(φ̄_k − M)² over `dof` + 1 out models and `sizes` samples."""
        prior = self.mean(sizes)
        if math.isinf(self.dof):
            return prior
        return (self.dof * prior + squares) / (self.dof + dof.double())


def _trigamma_inverse(value: float) -> float:
    """x with ψ'(x) = value (ψ' decreasing), by bisection on a log scale."""
    low, high = 1e-6, 1e8
    for _ in range(200):
        middle = math.sqrt(low * high)
        if float(torch.special.polygamma(1, torch.tensor(middle, dtype=torch.float64))) > value:
            low = middle
        else:
            high = middle
    return math.sqrt(low * high)


def fit_prior(squares: torch.Tensor, dof: torch.Tensor, sizes: torch.Tensor, within: torch.Tensor,
              sample_variance: float) -> Prior:
    """The prior from persons' Σ(φ̄_k − M)² (`squares`) over `dof` + 1 out models, their `sizes` and
    `within`, the mean over each person's samples of its own variance between models (module docstring).

    ρ is the mean over persons of (n·s²/within − 1)/(n − 1): relative to the person's own per-sample
    variance, so persons whose models disagree widely weigh no more than ordinary ones."""
    dof, sizes = dof.double(), sizes.double()
    usable = dof >= 1
    if not bool(usable.any()):
        raise EvaluationError("no person is out of two reference models: no prior for a person's variance")
    s2, d, n, w = squares[usable] / dof[usable], dof[usable], sizes[usable], within[usable]
    several = (n > 1) & (w > 0)
    correlation = 0.0
    if bool(several.any()):
        weights = d[several] * (n[several] - 1)
        estimates = (n[several] * s2[several] / w[several] - 1) / (n[several] - 1)
        correlation = min(max(float((weights * estimates).sum() / weights.sum()), 0.0), 0.99)
    base = Prior(sample_variance, correlation, 1.0, math.inf)
    # Smyth's moments on log(s² / prior mean): its excess spread over χ²'s gives ν₀, its centre the scale.
    logs = torch.log((s2 / base.mean(n)).clamp(min=1e-12)) - torch.special.digamma(d / 2) + torch.log(d / 2)
    excess = float(logs.var()) - float(torch.special.polygamma(1, d / 2).mean()) if len(logs) > 1 else 0.0
    if excess <= 0:
        return Prior(sample_variance, correlation, math.exp(float(logs.mean())), math.inf)
    dof0 = 2 * _trigamma_inverse(excess)
    centre = float(logs.mean()) + float(torch.special.digamma(torch.tensor(dof0 / 2))) - math.log(dof0 / 2)
    return Prior(sample_variance, correlation, math.exp(centre), dof0)


def units(groups: torch.Tensor) -> torch.Tensor:
    """The person of each sample: its group, or (for a sample of no group) a unit of its own."""
    groups = groups.to(torch.int64)
    alone = groups == NO_GROUP
    top = int(groups.max()) + 1 if len(groups) else 0
    return torch.where(alone, top + torch.arange(len(groups)), groups)


@dataclass(frozen=True)
class Persons:
    """The units of some samples (a subject group's samples that share their out models): per unit its
    size, out models and the references' mean φ; `index` maps each sample to its unit."""

    index: torch.Tensor  # [n] unit of each sample
    sizes: torch.Tensor  # [U]
    out: torch.Tensor  # [K, U] bool
    means: torch.Tensor  # [K, U] each reference model's mean φ over the unit's samples

    @classmethod
    def of(cls, reference_phi: torch.Tensor, out: torch.Tensor, groups: torch.Tensor) -> Persons:
        out = out.to(torch.bool)
        k = out.shape[0]
        pattern = (out.to(torch.int64) * (2 ** torch.arange(k, dtype=torch.int64))[:, None]).sum(dim=0)
        keys = torch.stack([units(groups), pattern], dim=1)
        _, index = torch.unique(keys, dim=0, return_inverse=True)
        count = int(index.max()) + 1 if len(index) else 0
        sizes = torch.zeros(count, dtype=torch.float64).index_add_(0, index, torch.ones(len(index),
                                                                                      dtype=torch.float64))
        sums = torch.zeros(k, count, dtype=torch.float64).index_add_(1, index, reference_phi.double())
        # Any sample of a unit stands for its out models: they share them by construction.
        first = torch.zeros(count, dtype=torch.int64).scatter_(0, index, torch.arange(len(index)))
        return cls(index, sizes, out[:, first], sums / sizes.clamp(min=1))

    def spread(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(M, Σ(φ̄_k − M)², m) of each unit over its out models."""
        m = self.out.sum(dim=0)
        centre = torch.where(self.out, self.means, 0.0).sum(dim=0) / m.clamp(min=1)
        squares = torch.where(self.out, (self.means - centre) ** 2, 0.0).sum(dim=0)
        return centre, squares, m


def unit_terms(target_phi: torch.Tensor, persons: Persons, calibration: Calibration, prior: Prior
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, Var R under the null) of each unit for a target's per-sample φ [n] (NaN: no out model)."""
    target = torch.zeros(len(persons.sizes), dtype=torch.float64).index_add_(
        0, persons.index, target_phi.double()) / persons.sizes.clamp(min=1)
    centre, squares, m = persons.spread()
    tau2 = prior.moderated(squares, (m - 1).clamp(min=0), persons.sizes)
    residual = target - calibration.intercept - calibration.slope * centre
    variance = (calibration.slope ** 2 * tau2 * (1 + 1 / m.clamp(min=1))
                + calibration.deviation / persons.sizes.clamp(min=1))
    nan = torch.full_like(residual, float("nan"))
    return torch.where(m > 0, residual, nan), torch.where(m > 0, variance, nan)


def pooled(residual: torch.Tensor, variance: torch.Tensor, sizes: torch.Tensor) -> float:
    """T of a request of these units: their mean residual per sample over its null standard deviation;
    NaN when no unit is scored."""
    scored = ~torch.isnan(residual)
    if not bool(scored.any()):
        return float("nan")
    n = sizes[scored].double()
    total = float(n.sum())
    mean = float((n * residual[scored]).sum()) / total
    return mean / math.sqrt(float((n ** 2 * variance[scored]).sum()) / total ** 2)


def request_statistic(target_phi: torch.Tensor, reference_phi: torch.Tensor, out: torch.Tensor,
                      groups: torch.Tensor, calibration: Calibration, prior: Prior) -> float:
    """T of one request: its samples' φ under the target [n] and the references [K, n], `out` [K, n],
    their subject `groups` [n]."""
    persons = Persons.of(reference_phi, out, groups)
    residual, variance = unit_terms(target_phi, persons, calibration, prior)
    return pooled(residual, variance, persons.sizes)
