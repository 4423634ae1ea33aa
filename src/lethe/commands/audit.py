"""`lethe audit prepare|show|retire`: the reference models of a model version (for the per-example
membership test), trained here and stored with the artifacts, where the ledger is."""

from __future__ import annotations

import argparse
import json

from lethe.commands._validation import MAX_SEED, device_argument, integer


def _prepare(args: argparse.Namespace) -> int:
    from lethe.steps.audit import prepare_references_for

    result = prepare_references_for(args.model, k=args.k, seed=args.seed, epochs=args.epochs,
                                    recipe=args.recipe,
                                    device=args.device, progress=not args.no_progress,
                                    tracking_uri=args.tracking_uri, model_name=args.model_name,
                                    subject_map=args.subjects, rebuild=args.rebuild)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        refs = result.references
        how = ("already stored" if result.cached else
               f"{'rebuilt' if result.rebuilt else 'trained'} ({refs.epochs} epochs each, halves by subject)")
        print(f"{refs.k} reference models of {refs.model_fingerprint[:12]}: {how}, at {refs.uri}")
        if result.refusal is not None:
            print(result.refusal)
    return 0


def _references(args: argparse.Namespace) -> object:
    import tempfile
    from pathlib import Path

    from lethe.audit import find_references
    from lethe.registry.fetch import fetch_model

    with tempfile.TemporaryDirectory(prefix="lethe-audit-") as tmp:
        model_dir = args.model if Path(args.model).is_dir() else Path(tmp) / "model"
        if model_dir != args.model:
            fetch_model(args.model, model_dir, tracking_uri=args.tracking_uri, model_name=args.model_name)
        return find_references(model_dir)


def _show(args: argparse.Namespace) -> int:
    refs = _references(args)
    if refs is None:
        print("no reference models prepared for this version's root (`lethe audit prepare`)")
        return 1
    labels_out = (~refs.membership).sum(dim=0).float()
    summary = {"uri": refs.uri, "k": refs.k, "design": refs.design,
               "judges_persons": refs.person_refusal is None,
               "subject_map_fingerprint": refs.subject_map_fingerprint,
               "weight_decay": refs.recipe.get("weight_decay"), "model_fingerprint": refs.model_fingerprint,
               "dataset_fingerprint": refs.dataset_fingerprint, "dataset": refs.recipe.get("dataset"),
               "arch": refs.recipe.get("model"), "epochs": refs.epochs, "seed": refs.seed,
               "train_samples": len(refs.train_ids), "test_samples": len(refs.test_ids),
               "excluded": refs.excluded, "out_models_per_sample": [int(labels_out.min()),
                                                                    int(labels_out.max())],
               "created_at": refs.created_at}
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    return 0


def _retire(args: argparse.Namespace) -> int:
    from lethe.audit import retire_references

    refs = _references(args)
    if refs is None:
        print("no reference models to retire")
        return 0
    removed = retire_references(refs.model_fingerprint)
    print(f"retired the reference models of {refs.model_fingerprint[:12]} ({removed} files)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("audit", help="reference models of a model version (membership evidence)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def model_arguments(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--model", required=True,
                         help="a model directory, models:/NAME@ALIAS, models:/NAME/VERSION or an alias")
        sub.add_argument("--tracking-uri",
                         help="MLflow tracking URI (default: LETHE_TRACKING_URI or .lethe/)")
        sub.add_argument("--model-name", help="registered model name (default: LETHE_MODEL_NAME)")
        sub.add_argument("--json", action="store_true", help="print JSON")

    prepare = actions.add_parser(
        "prepare", help="train and store the version's K reference models (once per root version)",
        description="Train K models with the version's recipe (its root's train.json, repeated exactly) on "
                    "random halves of its training data drawn by subject (all of a person's samples in or "
                    "out together), each person out of about K/2 of them, and store them with their "
                    "logits under the artifacts root. A version unlearned from a root with references reuses "
                    "them.")
    model_arguments(prepare)
    prepare.add_argument("--k", type=integer(2, 256), default=8,
                         help="number of reference models (default 8)")
    prepare.add_argument("--epochs", type=integer(1), help="epochs per model (default: the recipe's)")
    prepare.add_argument("--recipe", metavar="FILE",
                         help="the train.json of the root version, for a model registered without one")
    prepare.add_argument("--seed", type=integer(0, MAX_SEED), default=0,
                         help="seed of the halves and the models")
    prepare.add_argument("--subjects", metavar="PATH",
                         help="subject map: whose samples are drawn into the halves together, and how the "
                              "requests a retrained root left out resolve (default: LETHE_SUBJECT_MAP, "
                              "else the synthetic subjects)")
    prepare.add_argument("--rebuild", action="store_true",
                         help="train the set anew and replace the stored one (e.g. a per-sample set of an "
                              "older lethe, which judges no person), once every model is trained")
    prepare.add_argument("--device", type=device_argument,
                         help="cpu, cuda, cuda:1 (default: cuda when available)")
    prepare.add_argument("--no-progress", action="store_true", help="no progress bars")
    prepare.set_defaults(func=_prepare)

    show = actions.add_parser("show", help="describe the reference models of a version's root")
    model_arguments(show)
    show.set_defaults(func=_show)

    retire = actions.add_parser("retire", help="delete the reference models of a version's root")
    model_arguments(retire)
    retire.set_defaults(func=_retire)
