"""`lethe data`: look at a data set (size, classes, fingerprint) and its subjects."""

from __future__ import annotations

import argparse
import json


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
    if args.subjects:  # real subject ids are personal data: not printed
        return 0
    for subject, samples in list(mapping.items())[: args.head]:
        print(f"{subject}\t{' '.join(samples)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="inspect data sets and their subjects")
    commands = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    info_parser = commands.add_parser("info", help="size, classes, image shape, normalization, fingerprint")
    info_parser.add_argument("name", help="digits, fashion-mnist, cifar10, ..., imagefolder:DIR, shards:URI")
    info_parser.add_argument("--split", default="train", choices=("train", "test"))
    info_parser.add_argument("--data-dir")
    info_parser.add_argument("--json", action="store_true", help="print JSON")
    info_parser.set_defaults(func=info)

    subjects_parser = commands.add_parser("subjects", help="the subjects of the train split, their samples")
    subjects_parser.add_argument("name")
    subjects_parser.add_argument("--subjects", metavar="PATH", help="subject map file (default: synthetic)")
    subjects_parser.add_argument("--head", type=int, default=5, help="how many subjects to list")
    subjects_parser.add_argument("--data-dir")
    subjects_parser.set_defaults(func=subjects)
