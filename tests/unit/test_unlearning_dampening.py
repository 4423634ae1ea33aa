"""Dampening: the rule element by element, its invariants, and what it refuses."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lethe.errors import ImportancesError
from lethe.unlearning import (
    Importances,
    calibrate_alpha,
    compute_importances,
    dampen,
    model_fingerprint,
)
from lethe.unlearning.calibration import bisect_log_alpha
from tests.unit.test_unlearning_importances import batches, tiny_data, tiny_model


def importances_for(model: nn.Module, values: dict[str, torch.Tensor], **meta) -> Importances:
    defaults = dict(method="lfssd", batch_size=8, num_batches=1, num_samples=8,
                    model_fingerprint=model_fingerprint(model))
    return Importances(values, **{**defaults, **meta})


def random_pair(model: nn.Module, seed: int = 0) -> tuple[Importances, Importances]:
    generator = torch.Generator().manual_seed(seed)
    full = {n: torch.rand(p.shape, generator=generator) for n, p in model.named_parameters()}
    forget = {n: torch.rand(p.shape, generator=generator) * 20 for n, p in model.named_parameters()}
    return importances_for(model, full), importances_for(model, forget)


def test_rule_element_by_element() -> None:
    model = tiny_model()
    full, forget = random_pair(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    alpha, lam = 5.0, 0.7
    report = dampen(model, full, forget, alpha=alpha, lam=lam)
    selected_total = 0
    for name, p in model.named_parameters():
        theta, i_d, i_f = before[name].reshape(-1), full[name].reshape(-1), forget[name].reshape(-1)
        expected = theta.clone()
        for k in range(theta.numel()):
            if i_f[k] > alpha * i_d[k]:
                expected[k] = theta[k] * min(lam * i_d[k] / i_f[k], 1.0)
                selected_total += 1
        torch.testing.assert_close(p.detach().reshape(-1), expected, rtol=1e-6, atol=0)
    assert report.total_selected == selected_total > 0
    assert report.total_elements == sum(p.numel() for p in model.parameters())


def test_invariants_never_grows_unselected_bit_identical() -> None:
    model = tiny_model()
    full, forget = random_pair(model, seed=4)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    dampen(model, full, forget, alpha=3.0, lam=1.0)
    for name, p in model.named_parameters():
        assert bool((p.detach().abs() <= before[name].abs()).all())
        unselected = ~(forget[name] > 3.0 * full[name])
        assert torch.equal(p.detach()[unselected], before[name][unselected])


def test_zeros_handled_without_nan() -> None:
    model = tiny_model()
    zeros = {n: torch.zeros(p.shape) for n, p in model.named_parameters()}
    forget_values = dict(zeros)
    forget_values["4.bias"] = torch.ones(5)  # I_D = 0, I_f > 0: the element is zeroed
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    report = dampen(model, importances_for(model, zeros), importances_for(model, forget_values), alpha=10)
    assert torch.equal(model[4].bias.detach(), torch.zeros(5))
    assert report.selected["4.bias"] == 5 and report.total_selected == 5
    for name, p in model.named_parameters():
        assert bool(torch.isfinite(p).all())
        if name != "4.bias":  # I_f = 0 is never selected
            assert torch.equal(p.detach(), before[name])


def test_wrong_fingerprint_refused_before_anything_changes() -> None:
    model, other = tiny_model(), tiny_model(seed=9)
    full, forget = random_pair(other)
    before = model_fingerprint(model)
    with pytest.raises(ImportancesError, match="not for this model"):
        dampen(model, full, forget, alpha=1.0)
    assert model_fingerprint(model) == before


def test_nan_importances_refused_before_anything_changes() -> None:
    model = tiny_model()
    full, forget = random_pair(model)
    poisoned = dict(forget.items())
    poisoned["0.weight"] = poisoned["0.weight"].clone()
    poisoned["0.weight"].view(-1)[0] = float("nan")
    before = model_fingerprint(model)
    with pytest.raises(ImportancesError, match="NaN"):
        dampen(model, full, importances_for(model, poisoned), alpha=1.0)
    assert model_fingerprint(model) == before


def test_mixed_batch_size_refused() -> None:
    model = tiny_model()
    full, forget = random_pair(model)
    other = importances_for(model, dict(forget.items()), batch_size=16)
    with pytest.raises(ImportancesError, match="batch_size"):
        dampen(model, full, other, alpha=1.0)


def test_dampening_real_importances_forgets_the_forget_batch() -> None:
    """End to end on the tiny model: forget samples' outputs shrink much more than the rest."""
    model, (x, _) = tiny_model(), tiny_data(n=80)
    full = compute_importances(model, batches(x, None, 8), progress=False)
    forget = compute_importances(model, batches(x[:8], None, 8), progress=False)
    model.eval()
    with torch.no_grad():
        norm_before = model(x).pow(2).sum(1)
        dampen(model, full, forget, alpha=2.0)
        norm_after = model(x).pow(2).sum(1)
    ratio = norm_after / norm_before
    assert float(ratio[:8].mean()) < float(ratio[8:].mean())


def test_calibrate_alpha_is_the_quantile_of_the_ratio() -> None:
    model = tiny_model()
    full, forget = random_pair(model, seed=2)
    ratios = torch.cat([(forget[n] / full[n]).reshape(-1) for n in full])
    alpha = calibrate_alpha(full, forget, n_full=1000, n_forget=100)
    share_above = float((ratios > alpha).double().mean())
    assert math.isclose(share_above, 0.1, abs_tol=2 / ratios.numel() + 1e-9)
    with pytest.raises(ImportancesError):
        calibrate_alpha(full, forget, n_full=10, n_forget=0)


def test_bisection_returns_the_largest_alpha_meeting_a_monotone_target() -> None:
    tried: list[float] = []

    def met_below(limit: float):
        def trial(alpha: float) -> bool:
            tried.append(alpha)
            return alpha <= limit
        return trial

    best = bisect_log_alpha(met_below(7.3), 0.5, 100.0, 14)
    assert best in tried and best <= 7.3  # a value it tried, and met
    assert best > 7.3 / 1.001  # 14 halvings of log(200) pin it within a factor e^(5.3/2^14)
    assert bisect_log_alpha(met_below(1000.0), 0.5, 100.0, 14) == 100.0  # the upper bound meets it
    assert bisect_log_alpha(met_below(0.1), 0.5, 100.0, 14) is None  # not even the lower bound does


def test_calibrate_alpha_is_the_exact_quantile_rounded_to_float32() -> None:
    """The radix select on the device equals a double-precision kthvalue over every valid ratio."""
    from lethe.models import build_model

    torch.manual_seed(0)
    model = build_model("convnet", num_classes=10, in_channels=1)
    generator = torch.Generator().manual_seed(3)
    full_values, forget_values = {}, {}
    for name, p in model.named_parameters():
        kept = torch.rand(p.shape, generator=generator) > 0.1  # I_D = 0 elsewhere: left out
        full_values[name] = torch.rand(p.shape, generator=generator) ** 4 * kept
        forget_values[name] = torch.rand(p.shape, generator=generator) ** 3 * 20
    forget_values["classifier.4.bias"][:] = 0.5  # ties
    full, forget = importances_for(model, full_values), importances_for(model, forget_values)
    ratios = torch.cat([(forget[n].double() / full[n].double())[full[n] > 0] for n in full])
    for n_full, n_forget in [(1000, 1), (1000, 100), (60, 59), (7, 7), (50_000, 5_000)]:
        k = min(max(math.ceil((1 - n_forget / n_full) * ratios.numel()), 1), ratios.numel())
        exact = ratios.kthvalue(k).values.float()  # rounding is monotone: the float32 of the k-th
        assert calibrate_alpha(full, forget, n_full=n_full, n_forget=n_forget) == float(exact)


def _counting_hashes(monkeypatch) -> list[int]:
    from lethe.unlearning import fingerprint as fingerprints

    calls: list[int] = []
    real = fingerprints.fingerprint_of
    monkeypatch.setattr(fingerprints, "fingerprint_of", lambda snapshot: calls.append(1) or real(snapshot))
    return calls


def test_fingerprint_is_hashed_once_per_version(monkeypatch) -> None:
    import copy

    from lethe.unlearning.fingerprint import forget_fingerprint

    hashes = _counting_hashes(monkeypatch)
    model = tiny_model()
    first = model_fingerprint(model)
    assert model_fingerprint(model) == first and len(hashes) == 1
    twin = copy.deepcopy(model)  # bit-identical: recognised by comparison, not hashed
    assert model_fingerprint(twin) == first and len(hashes) == 1
    full, forget = random_pair(model)
    dampen(twin, full, forget, alpha=5.0)  # the check before dampening hashes nothing
    assert len(hashes) == 1
    changed = model_fingerprint(twin)  # dampened in place: a new version
    assert changed != first and len(hashes) == 2
    with torch.no_grad():
        model[4].bias[0] += 1.0
    assert model_fingerprint(model) not in (first, changed) and len(hashes) == 3
    model.load_state_dict(tiny_model().state_dict())
    assert model_fingerprint(model) == first and len(hashes) == 4
    model[4].bias.data[0] += 1.0  # invisible to the version counter: the caller says so
    forget_fingerprint(model)
    assert model_fingerprint(model) != first and len(hashes) == 5


def test_copy_with_one_differing_bit_is_hashed_not_matched(monkeypatch) -> None:
    import copy

    model = tiny_model()
    first = model_fingerprint(model)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin[4].bias[0] = -0.0 if float(model[4].bias[0]) == 0.0 else -model[4].bias[0]
    hashes = _counting_hashes(monkeypatch)
    assert model_fingerprint(twin) != first and len(hashes) == 1
