"""`lethe demo`: train, register, file erasure requests, run the pipelines locally, summarise.

What `make demo` runs; the steps are in lethe.demo (kfp is imported only when the pipelines run).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lethe.commands._validation import check_out_dir, integer


def run(args: argparse.Namespace) -> int:
    from lethe.config import settings
    from lethe.demo import DemoOptions, main

    check_out_dir(args.home or settings().home_dir() / "demo", flag="--home")
    return main(DemoOptions(home=Path(args.home) if args.home else None, dataset=args.dataset,
                            epochs=args.epochs, subjects=args.subjects, forget_class=args.forget_class,
                            retrain=args.retrain, progress=not args.no_progress))


def register(subparsers: argparse._SubParsersAction) -> None:
    from lethe.demo import DEMO_SUBJECTS, FORGET_CLASS

    parser = subparsers.add_parser(
        "demo", help="the whole flow on this machine: train, register, request, unlearn (kfp.local), report",
        description="Train a convnet (Fashion-MNIST, else digits), register it as champion, file erasure "
                    "requests, run the scheduled deletion pipeline and a class removal through kfp.local, "
                    "and print a summary. State lives under LETHE_HOME/demo; the trained model and the "
                    "importances cache are reused on the next run.")
    parser.add_argument("--home", help="where the demo keeps its state (default LETHE_HOME/demo)")
    parser.add_argument("--dataset", help="data set (default fashion-mnist, else digits)")
    parser.add_argument("--epochs", type=integer(1),
                        help="training epochs (default 3 for Fashion-MNIST, 6 for digits)")
    parser.add_argument("--subjects", type=integer(1), default=DEMO_SUBJECTS,
                        help=f"subjects who ask to be forgotten (default {DEMO_SUBJECTS})")
    parser.add_argument("--forget-class", type=integer(0), default=FORGET_CLASS,
                        help=f"the class removed on demand (default {FORGET_CLASS})")
    parser.add_argument("--retrain", action="store_true", help="train again even if a model exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)
