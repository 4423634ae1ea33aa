"""`lethe model register DIR`: put a trained model directory into the MLflow registry.

This is how a production model becomes the first `champion` that scheduled runs forget from.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("model", help="register a trained model directory in MLflow")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    reg = actions.add_parser("register", help="register a model directory as a new version",
                             description="Register a model directory (from `lethe train`) as a new "
                                         "version; with --champion it becomes the alias `champion`.")
    reg.add_argument("model_dir", metavar="DIR", help="a model directory written by `lethe train`")
    reg.add_argument("--champion", action="store_true",
                     help="give the new version the alias `champion` (the base model of deletion runs)")
    reg.add_argument("--tracking-uri", help="MLflow tracking URI (default: LETHE_TRACKING_URI or .lethe/)")
    reg.add_argument("--model-name", help="registered model name (default: LETHE_MODEL_NAME)")
    reg.add_argument("--json", action="store_true", help="print the version as JSON")
    reg.set_defaults(func=_register)


def _register(args: argparse.Namespace) -> int:
    from lethe.models import read_card
    from lethe.registry import PromotionDecision, Registry

    read_card(args.model_dir)  # a clear error for anything that is not a model directory
    reason = "registered as champion by `lethe model register`" if args.champion else "registered for review"
    info = Registry(tracking_uri=args.tracking_uri, model_name=args.model_name).register_version(
        args.model_dir, gate=PromotionDecision(bool(args.champion), (reason,)), scenario="base",
        run_name="base-model")
    if args.json:
        print(json.dumps({"version": info.version, "champion": info.is_champion}))
    else:
        alias = ", alias champion" if info.is_champion else " (review=pending: not champion)"
        print(f"registered version {info.version}{alias}")
    return 0
