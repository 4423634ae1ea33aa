"""`lethe request add|amend|cancel|list|show|export|retry`: the erasure-request ledger.

Nothing here prints a raw subject id: the ledger only holds its keyed hash. `add` and `amend` resolve
the request's ids (or its subject) against the champion's training data and the subject map with the
run's own code (`lethe.steps.collect.check_request`) and refuse anything unknown before storing it;
`--defer-check` leaves the check to the run (where the data or the map is not reachable from here).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lethe.commands._request_erasure import add_actions, add_copies_options, show_copies
from lethe.commands._validation import check_out_dir, integer, plain_text, sample_id
from lethe.errors import RegistryError

if TYPE_CHECKING:  # the ledger (SQLAlchemy) loads only when a command runs: `lethe --help` stays fast
    from lethe.ledger import ErasureRequest, Ledger

DEFAULT_DEADLINE_DAYS = 30


def _iso_datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from exc
    try:  # naive means UTC; an aware time is stored in UTC, which must exist (not before year 1)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise argparse.ArgumentTypeError(f"out of range in UTC: {text!r}") from None


def _day(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _due(request: ErasureRequest, now: datetime) -> str:
    if not request.is_open:
        return "-"
    days = (request.deadline - now).total_seconds() / 86400
    return f"OVERDUE {-days:.0f}d" if request.overdue else f"in {days:.0f}d"


def _as_dict(request: ErasureRequest) -> dict[str, Any]:
    data = {key: getattr(request, key) for key in request.__dataclass_fields__}
    data["sample_ids"] = list(request.sample_ids)
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}


def _ledger(args: argparse.Namespace) -> Ledger:
    from lethe.ledger import Ledger

    return Ledger(args.ledger, deadline_days=getattr(args, "deadline_days", DEFAULT_DEADLINE_DAYS))


Check = Callable[[Sequence[str], Sequence[str]], None]


def _checker(args: argparse.Namespace, ledger: Ledger) -> Check | None:
    """The filing check (`check_request`) with this command's options; None under --defer-check."""
    if args.defer_check:
        return None

    def check(subject_hashes: Sequence[str], sample_ids: Sequence[str]) -> None:
        from lethe.steps.collect import check_request

        check_request(subject_hashes, sample_ids, ledger=ledger, dataset=args.dataset,
                      subject_map=args.subject_map, tracking_uri=args.tracking_uri,
                      model_name=args.model_name)
    return check


def add(args: argparse.Namespace) -> int:
    ledger = _ledger(args)
    result = ledger.add(args.subject, args.samples or (), received_at=args.received,
                        check=_checker(args, ledger))
    request = result.request
    if result.created:
        status = "recorded"
    elif result.merged_sample_ids:
        status = f"merged {len(result.merged_sample_ids)} sample id(s) into the subject's open request"
    else:
        status = "the subject already has an open request covering it"
    if args.defer_check:
        status += "; not checked against the data: the run will"
    print(f"{request.id}  {request.state}  deadline {_day(request.deadline)}  ({status})")
    return 0


def amend(args: argparse.Namespace) -> int:
    ledger = _ledger(args)
    request = ledger.amend(args.id, args.samples, check=_checker(args, ledger))
    print(f"{request.id}  {request.state}  {len(request.sample_ids)} sample id(s)  deadline "
          f"{_day(request.deadline)}  (amended)")
    return 0


def cancel(args: argparse.Namespace) -> int:
    from lethe.registry.privacy import check_free_text

    ledger = _ledger(args)
    # Free text in the ledger: never a subject's raw id, a sample id or an e-mail address.
    check_free_text(args.reason, "the reason", ledger.mentions_subject)
    request = ledger.cancel(args.id, reason=args.reason)
    print(f"{request.id}  {request.state}")
    return 0


def list_(args: argparse.Namespace) -> int:
    from lethe.config import require_existing_store, settings
    from lethe.steps.collect import check_champion

    # Only reads: a ledger that is not there is refused, not created empty.
    require_existing_store(args.ledger or settings().ledger, "erasure ledger", "LETHE_LEDGER_URL")
    ledger = _ledger(args)
    try:
        drift = check_champion(ledger, tracking_uri=args.tracking_uri, model_name=args.model_name)
    except RegistryError as exc:  # the ledger still lists; the line says what was not checked
        drift = f"drift not checked: {exc}"
    requests = ledger.list_requests(args.state)
    if args.json:
        print(json.dumps([_as_dict(r) for r in requests], indent=2))
        if drift:
            print(drift, file=sys.stderr)
        return 0
    now = datetime.now(UTC)
    header = f"{'ID':36}  {'STATE':12}  {'RECEIVED':16}  {'DEADLINE':16}  {'DUE':12}  {'SAMPLES':>7}  VERSION"
    print(header)
    for r in requests:
        samples = str(len(r.sample_ids)) if r.sample_ids else "all"
        print(f"{r.id:36}  {r.state:12}  {_day(r.received_at):16}  {_day(r.deadline):16}  "
              f"{_due(r, now):12}  {samples:>7}  {r.model_version or '-'}")
    overdue = sum(r.overdue for r in requests)
    print(f"{len(requests)} request(s)" + (f", {overdue} OVERDUE" if overdue else ""))
    if drift:
        print(drift)
    return 0


def show(args: argparse.Namespace) -> int:
    if args.copies:
        return show_copies(args)
    ledger = _ledger(args)
    request, history = ledger.get(args.id), ledger.history(args.id)
    if args.json:
        print(json.dumps({**_as_dict(request), "history": [
            {**t.__dict__, "at": t.at.isoformat()} for t in history]}, indent=2))
        return 0
    now = datetime.now(UTC)
    rows = [("id", request.id), ("state", request.state), ("subject hash", request.subject_hash),
            ("samples", ", ".join(request.sample_ids) or "all samples of the subject"),
            ("received", request.received_at.isoformat()),
            ("deadline", f"{request.deadline.isoformat()} ({_due(request, now)})"),
            ("run", request.run_id or "-"), ("lease until", _day(request.lease_expires_at)),
            ("model version", request.model_version or "-"), ("fulfilled", _day(request.fulfilled_at)),
            ("reason", request.reason or "-")]
    for key, value in rows:
        print(f"{key:>14}: {value}")
    print("history:")
    for t in history:
        print(f"  {t.at.isoformat(timespec='seconds')}  {t.from_state or '(received)':>12} -> {t.to_state:12}"
              f"  {t.run_id or ''}  {t.note or ''}".rstrip())
    return 0


def export(args: argparse.Namespace) -> int:
    from lethe.ledger import export_certificates

    check_out_dir(args.out)
    written = export_certificates(_ledger(args), args.out)
    print(f"{len(written)} certificate(s) written to {args.out}")
    return 0


def retry(args: argparse.Namespace) -> int:
    from lethe.registry.privacy import check_free_text

    ledger = _ledger(args)
    check_free_text(args.reason, "the reason", ledger.mentions_subject)
    request = ledger.retry(args.id, note=f"retried: {args.reason}")
    print(f"{request.id}  {request.state}")
    return 0


def settle(args: argparse.Namespace) -> int:
    from lethe.config import require_existing_store, settings
    from lethe.steps.finalize import finalize_requests
    from lethe.steps.outcome import outcome_uri

    outcome_uri(args.run_id)  # a run id that names no marker (a path, a traversal) is refused first
    ledger = require_existing_store(args.ledger or settings().ledger, "erasure ledger", "LETHE_LEDGER_URL")
    print(finalize_requests(args.run_id, ledger_url=ledger, settle_only=True).summary)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--ledger", metavar="URL", default=None,
                        help="ledger database URL (default: LETHE_LEDGER_URL or sqlite under LETHE_HOME)")
    checked = argparse.ArgumentParser(add_help=False)
    checked.add_argument("--dataset", metavar="NAME",
                         help="check ids against this copy of the champion's training data (with no "
                              "champion: against this data set; default: the champion's card)")
    checked.add_argument("--subject-map", metavar="PATH",
                         help="the subject map (CSV/Parquet, a file or s3://; default LETHE_SUBJECT_MAP)")
    checked.add_argument("--defer-check", action="store_true",
                         help="record without checking ids and subject (the run checks them); for an "
                              "operator's machine that cannot reach the data or the subject map")
    checked.add_argument("--tracking-uri", default=None,
                         help="MLflow tracking URI (default: LETHE_TRACKING_URI)")
    checked.add_argument("--model-name", default=None, help="registered model (default: LETHE_MODEL_NAME)")
    parser = subparsers.add_parser("request", help="GDPR erasure requests: add, amend, cancel, list, show, "
                                                   "export, retry, settle, verify, keygen, check")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = actions.add_parser("add", parents=[common, checked], help="record an erasure request for a subject")
    p.add_argument("--subject", required=True, type=plain_text,
                   help="the subject's id (stored only as a keyed hash)")
    p.add_argument("--samples", nargs="+", metavar="ID", type=sample_id,
                   help="sample ids to forget (default: all of the subject's)")
    p.add_argument("--received", type=_iso_datetime, metavar="ISO",
                   help="when the request was received (default: now; naive times are UTC)")
    p.add_argument("--deadline-days", type=integer(1), default=DEFAULT_DEADLINE_DAYS,
                   help=f"days from receipt to the deadline (default {DEFAULT_DEADLINE_DAYS})")
    p.set_defaults(func=add)

    p = actions.add_parser("amend", parents=[common, checked],
                           help="replace the sample ids of a pending or failed request (then pending)")
    p.add_argument("id")
    p.add_argument("--samples", nargs="+", metavar="ID", type=sample_id, required=True,
                   help="the request's sample ids")
    p.set_defaults(func=amend)

    p = actions.add_parser("cancel", parents=[common], help="withdraw a pending or failed request")
    p.add_argument("id")
    p.add_argument("--reason", required=True, help="why (recorded in the history)")
    p.set_defaults(func=cancel)

    p = actions.add_parser("list", parents=[common], help="list requests with their state and deadline")
    p.add_argument("--state", help="pending, in_progress, fulfilled, complete, needs_review, failed or "
                                   "cancelled")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI for the drift check (default: LETHE_TRACKING_URI)")
    p.add_argument("--model-name", default=None, help="registered model (default: LETHE_MODEL_NAME)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=list_)

    p = actions.add_parser("show", parents=[common], help="one request and its history")
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_copies_options(p)
    p.set_defaults(func=show)

    p = actions.add_parser("export", parents=[common], help="a JSON certificate per fulfilled request")
    p.add_argument("--out", required=True, metavar="DIR", help="a directory or s3://bucket/prefix")
    p.set_defaults(func=export)

    add_actions(actions, common)

    p = actions.add_parser("retry", parents=[common], help="return a failed request to pending")
    p.add_argument("id")
    p.add_argument("--reason", default="operator retry", help="why (recorded in the history)")
    p.set_defaults(func=retry)

    p = actions.add_parser("settle", parents=[common],
                           help="settle a run's requests from the outcome its gate recorded (what the "
                                "scheduled run's settle task does); a run without one is left as it is")
    p.add_argument("run_id", metavar="RUN_ID")
    p.set_defaults(func=settle)
