"""Choosing α: the ASSD percentile rule, and the bisection the per-request search runs.

ASSD (Schoepf, Foster & Brintrup, arXiv 2402.10098) sets α from the distribution of the
importance ratio I_f / I_D: the (1 − |Df|/|D|) quantile, so that the share of parameters
selected tracks the share of data to forget. The per-request alternative searches α
(`lethe.unlearning.selection.select_dampening`, which bisects with `bisect_log_alpha`; see DESIGN.md:
the forgetting transition in α is sharp and class-dependent, so no fixed α serves).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from lethe.errors import ImportancesError
from lethe.unlearning.importances import Importances


def calibrate_alpha(full: Importances, forget: Importances, *, n_full: int, n_forget: int) -> float:
    """ASSD's α: the (1 − n_forget/n_full) quantile of I_f / I_D over elements with I_D > 0.

    Computed where the importances are (the model's device), in their dtype (float32), with no
    copy on the host and no concatenation of the ratios. Rounding is monotone, so the result is the
    double quotients' quantile rounded to float32, the precision the dampening compares in.
    """
    if not 0 < n_forget <= n_full:
        raise ImportancesError(f"need 0 < n_forget <= n_full (got {n_forget}, {n_full})")
    full.check_compatible(forget)
    device = next(iter(full.values())).device
    pairs = [(forget[name].to(device), full[name]) for name in full]
    ratios = [i_f / i_d for i_f, i_d in pairs]
    valid = [i_d > 0 for _, i_d in pairs]
    count = int(torch.stack([v.sum() for v in valid]).sum()) if valid else 0
    if count == 0:
        raise ImportancesError("full-data importances are zero everywhere: α cannot be calibrated")
    k = min(max(math.ceil((1.0 - n_forget / n_full) * count), 1), count)
    return float(kth_smallest(ratios, valid, k))


#: Histogram bins of the radix select: the top 16 bits of a non-negative float32 (sign, exponent,
#: 7 mantissa bits), plus one bin for the elements left out.
_BINS = 1 << 15


def kth_smallest(values: list[torch.Tensor], valid: list[torch.Tensor], k: int) -> torch.Tensor:
    """The k-th smallest (1-based) of the elements of `values` where `valid`, exactly, on their device.

    A radix select: a histogram over the top 16 bits of each float32 (which order non-negative
    floats as their values do) finds the bin holding the k-th element; `kthvalue` then runs on that
    bin alone. No concatenation of every value, and faster than a quickselect (`kthvalue`) over all
    on a CPU or a sort on a GPU. Negative or non-float32 values take the plain `kthvalue`.
    """
    plain = any(v.dtype != torch.float32 for v in values) or bool(
        torch.stack([v.min() for v in values if v.numel()]).lt(0).any())
    if plain:
        return torch.cat([v[m] for v, m in zip(values, valid, strict=True)]).kthvalue(k).values
    bins = []
    counts = torch.zeros(_BINS + 1, dtype=torch.int64, device=values[0].device)
    for value, mask in zip(values, valid, strict=True):
        key = (value.view(torch.int32) >> 16).masked_fill_(mask.logical_not(), _BINS)
        counts += torch.bincount(key.reshape(-1), minlength=_BINS + 1)
        bins.append(key)
    ends = counts[:_BINS].cumsum(0)
    chosen = torch.searchsorted(ends, torch.tensor([k], device=ends.device, dtype=ends.dtype))
    before = int((ends[chosen] - counts[chosen]).item())
    inside = torch.cat([v[b == chosen] for v, b in zip(values, bins, strict=True)])
    return inside.kthvalue(k - before).values


def bisect_log_alpha(trial: Callable[[float], bool], low: float, high: float, steps: int) -> float | None:
    """The largest α in [low, high] found to meet a target, by bisection on log α; None if `low` misses.

    Returns exactly a value `trial` was called with (met), so callers can look its trial up.
    """
    if trial(high):
        return high
    if not trial(low):
        return None
    lo, hi = math.log(low), math.log(high)  # invariant: target met at e^lo, missed at e^hi
    best = low
    for _ in range(steps):
        mid = (lo + hi) / 2
        value = math.exp(mid)
        if trial(value):
            lo, best = mid, value
        else:
            hi = mid
    return best
