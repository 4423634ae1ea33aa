"""`lethe request show --copies | verify | keygen | check`: the copies of a person's data, a certificate's
signature, and the deadlines watched (added to `lethe request` by `lethe.commands.request`)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from lethe.commands._validation import check_out_dir
from lethe.errors import LedgerError


def show_copies(args: argparse.Namespace) -> int:
    from lethe.steps.retention import request_copies

    copies = request_copies(args.id, ledger_url=args.ledger, tracking_uri=args.tracking_uri,
                            model_name=args.model_name, policy_path=args.policy)
    if args.json:
        print(json.dumps(copies, indent=2))
        return 0
    print(f"{'KIND':18}  {'STATE':8}  {'DUE':25}  {'RETIRED':25}  COPY")
    for copy in copies:
        print(f"{copy['kind']:18}  {copy['state']:8}  {copy.get('due') or '-':25}  "
              f"{copy.get('retired_at') or '-':25}  {copy['name']}")
    kept = sum(c["state"] != "retired" for c in copies)
    print(f"{len(copies)} cop(ies), {kept} not yet retired")
    return 0


def verify(args: argparse.Namespace) -> int:
    from lethe.ledger.signing import verify_certificate

    try:
        document = Path(args.certificate).read_bytes()
    except OSError as exc:
        raise LedgerError(f"cannot read the certificate {args.certificate}: {exc.strerror or exc}") from None
    fields = verify_certificate(document, args.public_key)
    print(f"valid: certificate of request {fields.get('request_id')} signed with key "
          f"{fields['signature']['key_id']}")
    return 0


def keygen(args: argparse.Namespace) -> int:
    from lethe.ledger.signing import generate_key_pair

    private, public = generate_key_pair(args.out)
    print(f"private key {private} (name it as certificate_key in the retention policy); public key {public} "
          "(give it to whoever verifies certificates)")
    return 0


def check(args: argparse.Namespace) -> int:
    from lethe.ledger import Ledger
    from lethe.ledger.watch import check_deadlines

    for out in (args.out, args.metrics):
        if out is not None:
            check_out_dir(str(Path(out).parent) if str(Path(out).parent) else ".")
            if Path(out).is_dir():
                raise LedgerError(f"{out} is a directory; name a file")
    result = check_deadlines(Ledger(args.ledger).list_requests(), now=datetime.now(UTC),
                             review_days=args.review_days)
    if args.out:
        Path(args.out).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    if args.metrics:
        Path(args.metrics).write_text(result.metrics())
    print(result.line)
    return 0 if result.healthy else 1


def _nonnegative_days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not 0 <= value <= 3650:
        raise argparse.ArgumentTypeError(f"days must be 0 to 3650, not {text}")
    return value


def add_actions(actions: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = actions.add_parser("verify", help="check a certificate's Ed25519 signature with the public key")
    p.add_argument("certificate", metavar="CERT", help="the certificate's JSON file")
    p.add_argument("--public-key", required=True, metavar="PEM", help="the certificate key's public half")
    p.set_defaults(func=verify)

    p = actions.add_parser("keygen", help="make the Ed25519 key pair certificates are signed with")
    p.add_argument("--out", required=True, metavar="DIR", help="a directory for the two PEM files")
    p.set_defaults(func=keygen)

    p = actions.add_parser("check", parents=[common],
                           help="exit 1 when a request is overdue, stuck in progress, or awaits review near "
                                "its deadline")
    p.add_argument("--review-days", type=_nonnegative_days, default=7.0, metavar="N",
                   help="alert on a request awaiting review within N days of its deadline (default 7)")
    p.add_argument("--out", metavar="FILE", help="write the JSON summary here")
    p.add_argument("--metrics", metavar="FILE",
                   help="write Prometheus metrics here (node_exporter's textfile collector)")
    p.set_defaults(func=check)


def add_copies_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--copies", action="store_true",
                        help="every copy of the person's data lethe keeps or retired, with its state")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (with --copies)")
    parser.add_argument("--model-name", default=None, help="registered model (with --copies)")
    parser.add_argument("--policy", metavar="PATH", help="the retention policy (with --copies)")
