"""`lethe train`: train a model directory (the baseline, or with --exclude-* the retrained gold standard)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from lethe.commands._validation import MAX_SEED, check_out_dir, device_argument, integer, positive_number
from lethe.data.catalog import dataset_help
from lethe.errors import ConfigError
from lethe.models.architectures import architecture_help


def non_negative_number(text: str) -> float:
    """An argparse type: a finite number >= 0 (a weight decay of 0 turns it off)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text!r}")
    return value


def _read_lines(path: str) -> list[str]:
    try:
        return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def _parse_kwargs(pairs: list[str]) -> dict[str, object]:
    kwargs: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--arch-arg expects KEY=VALUE, got {pair!r}")
        try:
            kwargs[key] = json.loads(value)
        except ValueError:
            kwargs[key] = value
    return kwargs


def run(args: argparse.Namespace) -> int:
    from lethe.models.baseline import train_model_dir
    from lethe.models.training import DEFAULT_WEIGHT_DECAY

    check_out_dir(args.out, sources=(args.model,))  # --model may be a directory to take the arch from
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    exclude_ids = list(args.exclude_ids or [])
    if args.exclude_ids_file:
        exclude_ids += _read_lines(args.exclude_ids_file)
    subjects = list(args.exclude_subjects or [])
    if args.exclude_subjects_file:
        subjects += _read_lines(args.exclude_subjects_file)
    record = train_model_dir(
        args.dataset, args.model, args.out, epochs=args.epochs, exclude_ids=exclude_ids,
        exclude_subjects=subjects, subjects_file=args.subjects, exclude_class=args.exclude_class,
        seed=args.seed, batch_size=args.batch_size, lr=args.lr,
        weight_decay=DEFAULT_WEIGHT_DECAY if args.weight_decay is None else args.weight_decay,
        augment=args.augment,
        arch_kwargs=_parse_kwargs(args.arch_arg or []), data_dir=args.data_dir, device=args.device,
        progress=not args.no_progress,
    )
    excluded = f", {record['excluded']} samples excluded" if record["excluded"] else ""
    print(f"{args.out}: {record['model']} on {record['dataset']} ({record['n_train']} samples{excluded}), "
          f"test accuracy {record['test_accuracy']:.4f}, {record['seconds']:.1f} s on {record['device']}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model directory (baseline, or the gold standard without some samples)",
        description="Train a classifier and write DIR/model.safetensors, DIR/model.json and DIR/train.json. "
                    "With --exclude-* the named samples are left out: the 'retrained without the forget set' "
                    "gold standard.")
    parser.add_argument("--dataset", required=True, help=f"{dataset_help()}, or a published data set's URI")
    parser.add_argument("--model", required=True,
                        help=f"{architecture_help()}, or a model directory whose architecture to reuse "
                             "(weights start fresh)")
    parser.add_argument("--epochs", type=integer(1), required=True)
    parser.add_argument("--out", required=True, help="the model directory to write")
    parser.add_argument("--exclude-ids", nargs="+", metavar="ID", help="sample ids to leave out")
    parser.add_argument("--exclude-ids-file", metavar="PATH", help="file of sample ids, one a line")
    parser.add_argument("--exclude-subjects", nargs="+", metavar="SUBJECT",
                        help="subjects whose samples to leave out")
    parser.add_argument("--exclude-subjects-file", metavar="PATH", help="file of subjects, one a line")
    parser.add_argument("--subjects", metavar="PATH",
                        help="subject map (CSV/Parquet: subject_id, sample_id); default: the synthetic one")
    parser.add_argument("--exclude-class", type=integer(0), metavar="K",
                        help="leave out every sample of class K")
    parser.add_argument("--seed", type=integer(0, MAX_SEED), default=0)
    parser.add_argument("--batch-size", type=integer(1), default=128)
    parser.add_argument("--lr", type=positive_number, default=3e-3,
                        help="peak learning rate (AdamW, one-cycle)")
    parser.add_argument("--weight-decay", type=non_negative_number, metavar="WD",
                        help="AdamW's decoupled weight decay (default 5e-4, lethe's own; 0 turns it off); "
                             "recorded in train.json, and repeated by reference models and retraining")
    parser.add_argument("--augment", action="store_true", help="random flips and crops (for CIFAR)")
    parser.add_argument("--arch-arg", action="append", metavar="KEY=VALUE",
                        help="architecture argument, e.g. width=16 or image_size=224 (repeatable)")
    parser.add_argument("--data-dir", help="where the data set's files are (default: LETHE_DATA_DIR)")
    parser.add_argument("--device", type=device_argument,
                        help="cpu, cuda, cuda:1 (default: cuda when available)")
    parser.add_argument("--threads", type=integer(1, 1024),
                        help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)
