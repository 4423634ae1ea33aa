"""`lethe retention apply`: retire the copies of erased people's data that the policy says are due
(`lethe.retention`); idempotent and resumable, the scheduled run's last task does the same."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime


def _iso(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def apply(args: argparse.Namespace) -> int:
    from lethe.retention import load_policy
    from lethe.steps.retention import apply_retention_policy

    load_policy(args.policy)  # a bad policy file is refused before anything is opened
    report = apply_retention_policy(ledger_url=args.ledger, tracking_uri=args.tracking_uri,
                                    model_name=args.model_name, policy_path=args.policy, now=args.now,
                                    pipeline_root=args.pipeline_root)
    for entry in report.retired:
        print(f"retired {entry['kind']}: {entry['name']}")
    for request_id in report.completed:
        print(f"{request_id}  complete")
    print(report.summary)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("retention", help="retire copies of erased people's data (the policy)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = actions.add_parser("apply", help="retire every copy that is due; complete the requests with none "
                                         "left")
    p.add_argument("--policy", metavar="PATH",
                   help="the retention policy YAML (default: LETHE_HOME/retention.yaml, else lethe's "
                        "defaults)")
    p.add_argument("--ledger", metavar="URL", default=None, help="ledger database URL")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: LETHE_TRACKING_URI)")
    p.add_argument("--model-name", default=None, help="registered model (default: LETHE_MODEL_NAME)")
    p.add_argument("--pipeline-root", metavar="DIR", default=None,
                   help="local pipeline runs' artifacts (default: LETHE_HOME/kfp)")
    p.add_argument("--now", type=_iso, metavar="ISO", default=None,
                   help="apply the policy as of this time (default: now; for a dry look ahead, use a copy)")
    p.set_defaults(func=apply)
