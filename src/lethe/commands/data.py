"""`lethe data`: look at a data set (size, classes, fingerprint) and its subjects; publish both to
object storage, where the pipeline's pods read them."""

from __future__ import annotations

import argparse
import json

from lethe.commands._validation import integer
from lethe.data.catalog import dataset_names


def info(args: argparse.Namespace) -> int:
    from lethe.data import load_dataset

    summary = load_dataset(args.name, args.split, data_dir=args.data_dir).describe()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for key, value in summary.items():
        print(f"{key:14} {value}")
    return 0


def subjects(args: argparse.Namespace) -> int:
    from lethe.data import load_dataset, subject_map

    train = load_dataset(args.name, "train", data_dir=args.data_dir)
    mapping = subject_map(train, args.subjects)
    sizes = [len(samples) for samples in mapping.values()]
    print(f"{len(mapping)} subjects over {sum(sizes)} samples of {train.name}/train "
          f"({min(sizes, default=0)}..{max(sizes, default=0)} samples each)")
    from lethe.config import settings

    if args.subjects or settings().subject_map:  # a real map (flag or LETHE_SUBJECT_MAP) is personal data
        print("(a real subject map: its ids are personal data and are not printed)")
        return 0
    for subject, samples in list(mapping.items())[: args.head]:
        print(f"{subject}\t{' '.join(samples)}")
    return 0


def publish(args: argparse.Namespace) -> int:
    from lethe.data import load_dataset, publish_dataset
    from lethe.data.shards import DEFAULT_SHARD_SIZE

    train = load_dataset(args.dataset, "train", data_dir=args.data_dir)
    test = load_dataset(args.dataset, "test", data_dir=args.data_dir)
    card = publish_dataset(train, test, args.to, source=train.name,
                           shard_size=args.shard_size or DEFAULT_SHARD_SIZE)
    splits = card.splits or {}
    sizes = ", ".join(f"{split} {entry.size}" for split, entry in splits.items())
    print(f"published {train.name} to {args.to} ({sizes} samples; train fingerprint "
          f"{splits['train'].fingerprint})")
    print(f"set LETHE_DATASET_URI={args.to} where the pipeline runs")
    return 0


def publish_subjects(args: argparse.Namespace) -> int:
    from lethe.data import publish_subject_map

    count = publish_subject_map(args.path, args.to)
    print(f"published a subject map of {count} subjects to {args.to} (set LETHE_SUBJECT_MAP={args.to})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="inspect data sets and their subjects")
    commands = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    info_parser = commands.add_parser("info", help="size, classes, image shape, normalization, fingerprint")
    info_parser.add_argument("name", help=", ".join(dataset_names()))
    info_parser.add_argument("--split", default="train", choices=("train", "test"))
    info_parser.add_argument("--data-dir")
    info_parser.add_argument("--json", action="store_true", help="print JSON")
    info_parser.set_defaults(func=info)

    subjects_parser = commands.add_parser("subjects", help="the subjects of the train split, their samples")
    subjects_parser.add_argument("name")
    subjects_parser.add_argument("--subjects", metavar="PATH|URI",
                                 help="subject map file or URI (default: LETHE_SUBJECT_MAP, else synthetic)")
    subjects_parser.add_argument("--head", type=integer(0), default=5, help="how many subjects to list")
    subjects_parser.add_argument("--data-dir")
    subjects_parser.set_defaults(func=subjects)

    publish_parser = commands.add_parser(
        "publish", help="write a data set to object storage: shards, sha256 sidecars, manifest, card",
        description="Write both splits of a data set under a storage URI as shards with sha256 sidecars, "
                    "a manifest and a dataset card (fingerprints, classes, image size, normalisation). "
                    "Sample ids stay the source's, so ledger entries stay valid, and models trained on the "
                    "source accept the copy.")
    publish_parser.add_argument("--dataset", required=True, metavar="NAME", help=", ".join(dataset_names()))
    publish_parser.add_argument("--to", required=True, metavar="URI",
                                help="where to write it, e.g. s3://BUCKET/datasets/NAME")
    publish_parser.add_argument("--shard-size", type=integer(1), metavar="N",
                                help="samples per shard (default 10000)")
    publish_parser.add_argument("--data-dir")
    publish_parser.set_defaults(func=publish)

    map_parser = commands.add_parser(
        "publish-subjects", help="write a subject map (CSV/Parquet) to object storage, or update it",
        description="Check a subject map (columns subject_id, sample_id) and store it at URI with its "
                    "sha256 sidecar; running it again replaces the published map.")
    map_parser.add_argument("path", metavar="PATH", help="the map: .csv or .parquet")
    map_parser.add_argument("--to", required=True, metavar="URI", help="e.g. s3://BUCKET/subjects/map.parquet")
    map_parser.set_defaults(func=publish_subjects)
