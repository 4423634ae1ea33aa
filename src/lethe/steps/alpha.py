"""The α parameter of a forget request, as the CLI, the steps and the pipelines pass it.

One rule everywhere: a positive, finite number, or a strategy name (`search`, `assd`); empty or
absent (a pipeline parameter left blank) means the default, `search`. Import-light: no torch.
"""

from __future__ import annotations

import math

from lethe.errors import ConfigError

ALPHA_STRATEGIES = ("search", "assd")
DEFAULT_ALPHA = "search"


def parse_alpha(alpha: str | float | None) -> str | float:
    """A positive, finite number, or one of `search`, `assd`; None or "" mean `search`."""
    if alpha is None or (isinstance(alpha, str) and not alpha.strip()):
        return DEFAULT_ALPHA
    if isinstance(alpha, str) and alpha.strip().lower() in ALPHA_STRATEGIES:
        return alpha.strip().lower()
    if isinstance(alpha, bool):
        raise ConfigError(f"alpha must be a positive number, 'search' or 'assd', not {alpha!r}")
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ConfigError(f"alpha must be a positive number, 'search' or 'assd', not {alpha!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"alpha must be a positive, finite number, not {alpha!r}")
    return value
