"""The retention step: the scheduled run's last task and `lethe retention apply`. It retires every copy the
policy says is due (`lethe.retention`), completes the requests with none left, and writes their
certificates again (now naming what was retired when)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from lethe.config import settings
from lethe.ledger import Ledger, write_certificate
from lethe.ledger.certificates import CertificateScope
from lethe.retention import RetentionPolicy, RetentionReport, apply_retention, load_policy
from lethe.storage import join_uri

log = logging.getLogger(__name__)


def certificate_scope(policy: RetentionPolicy) -> CertificateScope:
    """What every certificate says of the controller, the recipients and what lethe does not manage."""
    return CertificateScope(controller=policy.controller, recipients=tuple(policy.recipients),
                            not_managed=tuple(policy.not_managed),
                            rollback_window_days=policy.rollback_window_days,
                            signing_key=policy.certificate_key or None)


def local_pipeline_root() -> Path:
    """Where local pipeline runs keep their artifacts (`lethe pipeline run --local`, the demo)."""
    return settings().home / "kfp"


def apply_retention_policy(*, ledger_url: str | None = None, tracking_uri: str | None = None,
                           model_name: str | None = None, policy_path: str | None = None,
                           now: datetime | None = None, pipeline_root: str | Path | None = None,
                           certificates_root: str | None = None) -> RetentionReport:
    """Apply the retention policy once (idempotent: a second call retires nothing more)."""
    from lethe.registry import Registry

    policy = load_policy(policy_path)  # a bad policy file stops here, before anything changes
    ledger = Ledger(ledger_url)
    registry = Registry(tracking_uri, model_name)
    scope = certificate_scope(policy)
    out = certificates_root or join_uri(settings().artifacts, "certificates")
    report = apply_retention(
        ledger, registry, artifacts=str(settings().artifacts), policy=policy, now=now or datetime.now(UTC),
        pipeline_root=Path(pipeline_root) if pipeline_root is not None else local_pipeline_root(),
        on_complete=lambda request: write_certificate(request, out, scope))
    log.info(report.summary)
    return report


def request_copies(request_id: str, *, ledger_url: str | None = None, tracking_uri: str | None = None,
                   model_name: str | None = None, policy_path: str | None = None,
                   now: datetime | None = None, pipeline_root: str | Path | None = None) -> list[dict]:
    """Every copy of a request's data lethe keeps or retired: the inventory now, and what the journal
    says retention already deleted (reference sets, caches and run folders leave no other trace)."""
    from lethe.registry import Registry
    from lethe.retention import Holdings, copies_of
    from lethe.retention.journal import read_journal

    policy = load_policy(policy_path)
    request = Ledger(ledger_url).get(request_id)
    artifacts = str(settings().artifacts)
    holdings = Holdings.read(Registry(tracking_uri, model_name), artifacts=artifacts,
                             pipeline_root=Path(pipeline_root) if pipeline_root is not None
                             else local_pipeline_root())
    now = now or datetime.now(UTC)
    found = {copy.key: copy.to_dict() for copy in copies_of(request, holdings, policy, now)}
    for entry in read_journal(artifacts, request.id).copies:
        key = (entry.get("kind"), entry.get("name"))
        if key not in found or found[key].get("state") != "retired":
            found[key] = {**found.get(key, {}), **entry}
    return list(found.values())
