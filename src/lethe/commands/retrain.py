"""`lethe retrain`: the exact remedy. Train the version's own recipe without every sample it must forget
(its lineage's requests, from the ledger, and the ones named here), then evaluate, register and gate
the result like any candidate (tagged lethe.remedy=retrain)."""

from __future__ import annotations

import argparse
import json
import time
import uuid
from pathlib import Path

from lethe.commands._validation import check_out_dir, device_argument, integer


def run(args: argparse.Namespace) -> int:
    from lethe.commands.evaluate import read_ids
    from lethe.config import settings
    from lethe.forgetting.spec import ForgetSpec
    from lethe.steps.evaluate import evaluate
    from lethe.steps.retrain import register_retrained, retrain

    out = Path(args.out) if args.out else settings().home_dir() / "retrain" / time.strftime("%Y%m%dT%H%M%S")
    check_out_dir(out)
    candidate, parent, evaluation, forget = out / "model", out / "parent", out / "evaluation", out / "forget"
    result = retrain(args.model, out_dir=candidate, parent_dir=parent, forget_path=forget,
                     exclude_ids=read_ids(args.exclude_ids),
                     exclude_subjects=list(args.exclude_subjects or []), exclude_class=args.exclude_class,
                     subjects_file=args.subjects, epochs=args.epochs,
                     recipe=args.recipe, device=args.device, progress=not args.no_progress,
                     tracking_uri=args.tracking_uri, model_name=args.model_name)
    summary = result.to_dict()
    accuracy = result.test_accuracy
    line = (f"{candidate}: retrained without {result.excluded} samples ({result.request_ids} requests of the "
            f"lineage), test accuracy {accuracy:.4f}" if accuracy is not None else f"{candidate}: retrained")
    if not args.no_register:
        spec = ForgetSpec.load(forget)
        evaluated = evaluate(candidate, parent, spec.dataset, **spec.forget_kwargs(), out_dir=evaluation,
                             thresholds=args.thresholds, device=args.device, progress=not args.no_progress,
                             requests=spec.request_samples or None)
        registered = register_retrained(candidate, evaluation, forget,
                                        run_id=f"retrain-{uuid.uuid4().hex[:12]}",
                                        model_name=args.model_name, tracking_uri=args.tracking_uri)
        summary.update(gate=evaluated.decision, version=registered.version, decision=registered.decision,
                       promoted=registered.promoted)
        line += (f"; gate {evaluated.decision}, registered as version {registered.version} "
                 f"({registered.decision})")
    print(json.dumps(summary) if args.json else line)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "retrain", help="retrain a version's recipe without everything it must forget (the exact remedy)",
        description="Train the version's own recipe (its root's train.json) on its data minus every sample "
                    "its lineage forgot (the requests it honours, resolved by the ledger) and the samples "
                    "named here; then evaluate, register and gate it like any candidate.")
    parser.add_argument("--model", required=True,
                        help="models:/NAME/VERSION, models:/NAME@ALIAS, an alias, or a trained model "
                             "directory")
    parser.add_argument("--exclude-ids", nargs="+", metavar="ID",
                        help="more sample ids to leave out; @FILE reads them from FILE, one a line")
    parser.add_argument("--exclude-subjects", nargs="+", metavar="SUBJECT", help="more subjects to leave out")
    parser.add_argument("--exclude-class", type=integer(0), metavar="K",
                        help="leave out every sample of class K")
    parser.add_argument("--subjects", metavar="PATH",
                        help="subject map (CSV/Parquet: subject_id, sample_id); default: the synthetic one")
    parser.add_argument("--epochs", type=integer(1), help="epochs (default: the recipe's)")
    parser.add_argument("--recipe", metavar="FILE",
                        help="the train.json of the root version, for a model registered without one")
    parser.add_argument("--thresholds", metavar="FILE|URI",
                        help="the gate's thresholds (default: the shipped ones)")
    parser.add_argument("--out", help="working directory (default: LETHE_HOME/retrain/<time>)")
    parser.add_argument("--no-register", action="store_true",
                        help="train only: no evaluation, no registration")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: LETHE_TRACKING_URI or .lethe/)")
    parser.add_argument("--model-name", help="registered model name (default: LETHE_MODEL_NAME)")
    parser.add_argument("--device", type=device_argument,
                        help="cpu, cuda, cuda:1 (default: cuda when available)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)
