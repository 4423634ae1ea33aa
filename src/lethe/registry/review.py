"""A reviewer's decision on a version that failed the gate (or that the champion moved past):
approved, it becomes `champion`; rejected, `champion` stays. Recorded in the version's tags
(`review`, `review.by`, `review.reason`, `review.at`) and its description, after checking that the
reviewer's words carry no subject or sample id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from lethe.errors import RegistryError
from lethe.registry.client import mlflow_errors
from lethe.registry.description import reviewed_description
from lethe.registry.metadata import VersionInfo
from lethe.registry.privacy import PrivacyGuard
from lethe.registry.tags import CHAMPION, REVIEW, REVIEW_AT_TAG, REVIEW_BY_TAG, REVIEW_REASON_TAG

RUN_NOTE_TAG = "mlflow.note.content"  # the run's description in the MLflow UI


class Versions(Protocol):
    """What a decision needs of the registry (`lethe.registry.Registry`)."""

    model_name: str
    tracking_uri: str
    client: Any  # mlflow.MlflowClient

    def version(self, version: str | int) -> VersionInfo: ...

    def champion_version(self) -> str | None: ...


def decide(registry: Versions, version: str | int, decision: Literal["approved", "rejected"], *, by: str,
           reason: str, guard: PrivacyGuard | None = None) -> VersionInfo:
    """Record `decision` on a version awaiting review; `guard` checks `by` and `reason` before anything
    is sent (default: sample ids only). An approval must honour every request the champion does.
    Two decisions on one model must not interleave: callers that may race hold the ledger's
    `decision_lock` around this and the ledger's part (`lethe review` does)."""
    if not by.strip() or not reason.strip():
        raise RegistryError("a review decision needs --by NAME and --reason TEXT")
    guard = guard or PrivacyGuard()
    guard.check_text(by, "the reviewer's name")
    guard.check_text(reason, "the review reason")
    info = registry.version(version)
    if info.review != "pending":
        raise RegistryError(f"version {info.version} of {registry.model_name} is not awaiting review "
                            f"(review={info.review or 'none'})")
    if decision == "approved" and getattr(registry, "promotion_blocked", lambda: False)():
        raise RegistryError(f"the champion of {registry.model_name} does not honour every fulfilled "
                            "request (drift): confirm it first with `lethe review confirm-champion`; nothing "
                            "was changed")
    champion = registry.champion_version() if decision == "approved" else None
    if champion and champion != info.version:
        missing = set(registry.version(champion).request_ids) - set(info.request_ids)
        if missing:
            moved = (f"the champion moved (now version {champion}); version {info.version} no longer "
                     "descends from it and" if info.parent_version != champion else f"version {info.version}")
            raise RegistryError(f"{moved} does not honour {len(missing)} request(s) that the champion "
                                f"(version {champion}) honours; reject it and re-run")
    at = datetime.now(UTC).isoformat(timespec="seconds")
    with mlflow_errors(registry.tracking_uri):
        # The alias first, the `review` tag last: the tag says the decision is complete, so a
        # failure in between leaves the version pending and the same command finishes it.
        if decision == "approved":
            # Compare, then set: the champion checked above must still be the champion. Under the
            # ledger's decision lock (`lethe review`) nothing moves it in between; without it this
            # narrows the window but cannot close it (MLflow has no atomic compare-and-set).
            if registry.champion_version() != champion:
                raise RegistryError(f"the champion moved while version {info.version} was being approved; "
                                    "run the same command again")
            registry.client.set_registered_model_alias(registry.model_name, CHAMPION, info.version)
        description = reviewed_description(info.description, decision, by, at, reason)
        registry.client.update_model_version(registry.model_name, info.version, description)
        decided = ((REVIEW_BY_TAG, by), (REVIEW_REASON_TAG, reason), (REVIEW_AT_TAG, at), (REVIEW, decision))
        follow_on_run(registry, info, description, decided)
        for key, value in decided:
            registry.client.set_model_version_tag(registry.model_name, info.version, key, value)
    return registry.version(info.version)


def follow_on_run(registry: Versions, info: VersionInfo, description: str,
                  decided: tuple[tuple[str, str], ...]) -> None:
    """The version's run says what the version says: its note (MLflow's run description) and its
    review tags, so a reviewer reading the run in the MLflow UI does not see "waits for a reviewer"."""
    if not info.run_id:
        return
    registry.client.set_tag(info.run_id, RUN_NOTE_TAG, description)
    for key, value in decided:
        registry.client.set_tag(info.run_id, key, value)
