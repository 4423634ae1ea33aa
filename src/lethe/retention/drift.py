"""Drift: the champion must honour every fulfilled (and complete) request. When it does not (the alias
was moved by hand, an old version restored), the requests it does not honour are reopened with the
reason, and promotion is refused (`Registry.promotion_blocked`) until a reviewer confirms the champion
(`lethe review confirm-champion VERSION --by NAME --reason TEXT`). Every run and `lethe review list` /
`lethe request list` check it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lethe.errors import RegistryError
from lethe.ledger import HONOURED_STATES, Ledger
from lethe.registry.tags import CONFIRMED_CHAMPION_TAG, DRIFT_TAG
from lethe.retention.copies import honours


@dataclass
class Drift:
    champion: str | None
    reopened: list[str] = field(default_factory=list)
    blocked: str | None = None  # the champion version promotion waits on a reviewer for

    @property
    def line(self) -> str | None:
        """One line for the operator, or None when the champion honours every fulfilled request."""
        if self.reopened:
            return (f"drift: the champion (version {self.champion}) does not honour {len(self.reopened)} "
                    f"fulfilled request(s); they are pending again, and no version is promoted until "
                    f"`lethe review confirm-champion {self.champion} --by NAME --reason TEXT`")
        if self.blocked:
            return (f"drift: promotion is refused until a reviewer confirms the champion "
                    f"(`lethe review confirm-champion {self.blocked} --by NAME --reason TEXT`)")
        return None


def _model_tags(registry: Any) -> dict[str, str]:
    from mlflow.exceptions import MlflowException

    from lethe.registry.client import mlflow_errors  # MLflow loads at the first call
    with mlflow_errors(registry.tracking_uri):
        try:
            return dict(registry.client.get_registered_model(registry.model_name).tags or {})
        except MlflowException:
            return {}


def check_drift(ledger: Ledger, registry: Any) -> Drift:
    """Reopen the fulfilled requests the champion does not honour; block promotion when any were."""
    champion = registry.champion_version()
    if champion is None:
        return Drift(champion=None)
    info = registry.version(champion)
    honoured = [r for state in HONOURED_STATES for r in ledger.list_requests(state)]
    missing = [r.id for r in honoured if not honours(info, r.id)]
    drift = Drift(champion=champion, blocked=_model_tags(registry).get(DRIFT_TAG) or None)
    if missing:
        reason = (f"the champion (version {champion}) does not honour it (the alias moved to a version that "
                  "never forgot it); it is forgotten again from the current champion")
        drift.reopened = [r.id for r in ledger.reopen(missing, reason=reason)]
        from lethe.registry.client import mlflow_errors  # MLflow loads at the first call
        with mlflow_errors(registry.tracking_uri):
            registry.client.set_registered_model_tag(registry.model_name, DRIFT_TAG, champion)
        drift.blocked = champion
    return drift


def confirm_champion(registry: Any, version: str, *, by: str, reason: str) -> str:
    """A reviewer accepts the current champion after drift: promotion is allowed again."""
    if not by.strip() or not reason.strip():
        raise RegistryError("confirming the champion needs --by NAME and --reason TEXT")
    champion = registry.champion_version()
    if champion != str(version):
        raise RegistryError(f"version {version} is not the champion of {registry.model_name} "
                            f"(the champion is {champion or 'none'}); nothing was changed")
    from lethe.registry.client import mlflow_errors  # MLflow loads at the first call
    with mlflow_errors(registry.tracking_uri):
        registry.client.set_registered_model_tag(registry.model_name, CONFIRMED_CHAMPION_TAG,
                                                 f"{version} by {by}: {reason}")
        if DRIFT_TAG in _model_tags(registry):
            registry.client.delete_registered_model_tag(registry.model_name, DRIFT_TAG)
    return champion
