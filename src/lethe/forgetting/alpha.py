"""The α parameter of a forget request, as the CLI, the steps and the pipelines pass it.

One rule everywhere: a positive, finite number, or a strategy name (`search`, `assd`); empty or
absent (a pipeline parameter left blank) means the default, `search`. Import-light: no torch.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

from lethe.errors import ConfigError

#: How α is found: bisection for the largest α that meets the scenario's target, or ASSD's rule.
AlphaStrategy = Literal["search", "assd"]
#: How the α a candidate was dampened with came about (dampening.json's `alpha_method`).
AlphaMethod = Literal["given", "search", "assd"]

ALPHA_STRATEGIES: tuple[str, ...] = get_args(AlphaStrategy)
DEFAULT_ALPHA: AlphaStrategy = "search"


def parse_alpha(alpha: str | float | None) -> AlphaStrategy | float:
    """A positive, finite number, or one of `search`, `assd`; None or "" mean `search`."""
    if alpha is None or (isinstance(alpha, str) and not alpha.strip()):
        return DEFAULT_ALPHA
    if isinstance(alpha, str) and alpha.strip().lower() in ALPHA_STRATEGIES:
        return alpha.strip().lower()  # type: ignore[return-value]
    if isinstance(alpha, bool):
        raise ConfigError(f"alpha must be a positive number, 'search' or 'assd', not {alpha!r}")
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ConfigError(f"alpha must be a positive number, 'search' or 'assd', not {alpha!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"alpha must be a positive, finite number, not {alpha!r}")
    return value


def alpha_method(choice: AlphaStrategy | float) -> AlphaMethod:
    """How a parsed α is recorded: its strategy's name, or `given` for a number."""
    return choice if isinstance(choice, str) else "given"
