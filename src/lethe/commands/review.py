"""`lethe review list|approve|reject`: a human decision on versions that failed the gate.

Approving moves `champion` and fulfils the version's requests; rejecting returns them to
pending for the next run. The ledger is opened (and `--by`/`--reason` checked for subject and
sample ids) before MLflow is touched; if the ledger fails after MLflow recorded the decision, the
error says so and the same command finishes the ledger's part.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lethe.errors import LedgerError, RegistryError
from lethe.registry.tags import (
    GATE_REASONS_TAG,
    REVIEW_AT_TAG,
    REVIEW_BY_TAG,
    REVIEW_REASON_TAG,
    SCENARIO_TAG,
)

if TYPE_CHECKING:  # MLflow loads only when a command runs: `lethe --help` stays fast
    from lethe.ledger import Ledger
    from lethe.registry import Registry
    from lethe.registry.metadata import VersionInfo
    from lethe.registry.privacy import PrivacyGuard


def _registry(args: argparse.Namespace) -> Registry:
    from lethe.registry import Registry

    return Registry(args.tracking_uri, args.model_name)


def list_(args: argparse.Namespace) -> int:
    from lethe.config import require_existing_store, settings

    # Only reads: a registry that is not there is refused, not created empty.
    require_existing_store(args.tracking_uri or settings().tracking, "model registry", "LETHE_TRACKING_URI")
    registry = _registry(args)
    drift = _drift_line(args, registry)
    versions = registry.versions() if args.all else registry.pending_reviews()
    champion = registry.champion_version()
    if args.json:  # every field in full, for scripts (the table shortens the reasons)
        print(json.dumps({"model": registry.model_name, "champion": champion, "versions": [
            {"version": v.version, "created": v.created.isoformat(), "parent": v.parent_version,
             "scenario": v.tags.get(SCENARIO_TAG), "gate": v.gate, "review": v.review,
             "champion": v.version == champion, "requests": list(v.request_ids),
             "gate_reasons": v.tags.get(GATE_REASONS_TAG, ""),
             "review_by": v.tags.get(REVIEW_BY_TAG), "review_reason": v.tags.get(REVIEW_REASON_TAG),
             "review_at": v.tags.get(REVIEW_AT_TAG), "description": v.description} for v in versions]},
            indent=2))
        if drift:
            print(drift, file=sys.stderr)
        return 0
    print(f"model {registry.model_name}; champion: version {champion or '-'}")
    print(f"{'VERSION':>7}  {'CREATED':16}  {'PARENT':>6}  {'GATE':4}  {'REVIEW':8}  {'REQUESTS':>8}  "
          "REASONS")
    for v in versions:
        reasons = v.tags.get(GATE_REASONS_TAG, "")
        print(f"{v.version:>7}  {v.created:%Y-%m-%d %H:%M}  {v.parent_version or '-':>6}  {v.gate or '-':4}  "
              f"{v.review or '-':8}  {len(v.request_ids):>8}  {_shorten(reasons, 80)}")
    if drift:
        print(drift)
    if not versions:
        print("nothing awaits review" if not args.all else "no versions")
    elif any(len(v.tags.get(GATE_REASONS_TAG, "")) > 80 for v in versions):
        print("(reasons shortened: `lethe review list --json` has them in full)")
    return 0


def _drift_line(args: argparse.Namespace, registry: Registry) -> str | None:
    """The drift check (`lethe.retention.drift`) when the ledger has fulfilled requests; its one line."""
    from lethe.config import settings
    from lethe.ledger import HONOURED_STATES, Ledger
    from lethe.retention import check_drift

    url = args.ledger or settings().ledger
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return None  # no ledger here: nothing fulfilled to check (and none is created by looking)
    ledger = Ledger(url)
    if not any(ledger.list_requests(state) for state in HONOURED_STATES):
        return None
    return check_drift(ledger, registry).line


def confirm_champion(args: argparse.Namespace) -> int:
    from lethe.ledger import Ledger
    from lethe.registry import PrivacyGuard
    from lethe.retention import confirm_champion as confirm

    registry = _registry(args)
    guard = PrivacyGuard(names_subject=Ledger(args.ledger).mentions_subject)
    guard.check_text(args.by, "the reviewer's name")
    guard.check_text(args.reason, "the confirmation reason")
    version = confirm(registry, args.version, by=args.by, reason=args.reason)
    print(f"version {version} confirmed as champion by {args.by}; promotion is allowed again")
    return 0


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _decide(args: argparse.Namespace, decision: str) -> int:
    from lethe.ledger import Ledger
    from lethe.registry import PrivacyGuard

    registry = _registry(args)
    ledger = Ledger(args.ledger)  # an unreachable ledger stops here, before MLflow changes
    # --by and --reason reach MLflow: no sample id, and no id of a subject the ledger knows.
    guard = PrivacyGuard(names_subject=ledger.mentions_subject)
    guard.check_text(args.by, "the reviewer's name")
    guard.check_text(args.reason, "the review reason")
    # One decision per model at a time, MLflow and the ledger together: a racing approval of a
    # sibling, or a reject of the same version, reads the state this one leaves (see decision_lock).
    with ledger.decision_lock(registry.model_name):
        return _decide_locked(args, decision, registry, ledger, guard)


def _decide_locked(args: argparse.Namespace, decision: str, registry: Registry, ledger: Ledger,
                   guard: PrivacyGuard) -> int:
    info = registry.version(args.version)
    if info.review == "pending":
        info = (registry.approve if decision == "approved" else registry.reject)(
            args.version, by=args.by, reason=args.reason, guard=guard)
    elif info.review != decision:
        raise RegistryError(f"version {info.version} is not awaiting review (review={info.review or 'none'})")
    else:  # the same decision again only finishes the ledger's part: say so, and that it records nothing
        return _repeated(args, decision, info, ledger)
    try:
        requests = ledger.resolve_review(info.version, approved=decision == "approved",
                                         by=args.by, reason=args.reason)
    except LedgerError as exc:
        moved = "it is the champion" if decision == "approved" else "the champion stays"
        raise LedgerError(f"version {info.version} is {decision} in MLflow ({moved}), but the ledger was not "
                          f"updated: {exc}; run the same command again to finish") from exc
    if decision == "approved":
        print(f"version {info.version} approved by {args.by}: it is the champion; "
              f"{len(requests)} request(s) fulfilled")
    else:
        print(f"version {info.version} rejected by {args.by}; {len(requests)} request(s) back to pending")
    return 0


def _repeated(args: argparse.Namespace, decision: str, info: VersionInfo, ledger: Ledger) -> int:
    """The decision a version already has, again: MLflow keeps the first one (its reviewer and reason);
    the ledger's part is finished if a failure left it undone."""
    try:
        requests = ledger.resolve_review(info.version, approved=decision == "approved",
                                         by=args.by, reason=args.reason)
    except LedgerError as exc:
        raise LedgerError(f"version {info.version} is {decision} in MLflow, but the ledger was not updated: "
                          f"{exc}; run the same command again to finish") from exc
    first = (f"version {info.version} was already {decision} by {info.tags.get(REVIEW_BY_TAG, '?')} at "
             f"{info.tags.get(REVIEW_AT_TAG, '?')} ({info.tags.get(REVIEW_REASON_TAG, '')})")
    if requests:
        state = "fulfilled" if decision == "approved" else "back to pending"
        print(f"{first}; the ledger had not followed: {len(requests)} request(s) now {state}. "
              "This decision's reviewer and reason were not recorded.")
    else:
        print(f"{first}: nothing changed; this decision's reviewer and reason were not recorded.")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default: LETHE_TRACKING_URI)")
    common.add_argument("--model-name", default=None, help="registered model (default: LETHE_MODEL_NAME)")
    common.add_argument("--ledger", metavar="URL", default=None, help="ledger database URL")
    parser = subparsers.add_parser("review", help="review model versions that failed the gate")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = actions.add_parser("list", parents=[common], help="versions awaiting review")
    p.add_argument("--all", action="store_true", help="every version, not only those awaiting review")
    p.add_argument("--json", action="store_true", help="print JSON, reasons in full")
    p.set_defaults(func=list_)
    choices = (("approve", "approved", "make it the champion and fulfil its requests"),
               ("reject", "rejected", "keep the champion; its requests go back to pending"))
    for name, decision, text in choices:
        p = actions.add_parser(name, parents=[common], help=text)
        p.add_argument("version")
        p.add_argument("--by", required=True, metavar="NAME", help="who decides")
        p.add_argument("--reason", required=True, metavar="TEXT", help="why")
        p.set_defaults(func=lambda args, d=decision: _decide(args, d))
    p = actions.add_parser("confirm-champion", parents=[common],
                           help="accept the champion after drift (it does not honour every fulfilled "
                                "request): promotion is allowed again; the reopened requests are forgotten "
                                "again")
    p.add_argument("version")
    p.add_argument("--by", required=True, metavar="NAME", help="who confirms")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why")
    p.set_defaults(func=confirm_champion)
