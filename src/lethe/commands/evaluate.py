"""`lethe evaluate`: accuracies, membership inference, Evidently report, plots and the gate."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lethe.commands._validation import check_out_dir, device_argument, integer
from lethe.errors import ConfigError
from lethe.forgetting.scenarios import SCENARIOS, describe_scenarios


def read_ids(values: list[str] | None) -> list[str]:
    """Sample ids from the command line; `@FILE` stands for the ids in FILE, one a line."""
    ids: list[str] = []
    for value in values or []:
        if value.startswith("@"):
            path = Path(value[1:])
            try:
                lines = path.read_text().splitlines()
            except OSError as exc:
                raise ConfigError(f"cannot read sample ids from {path}: {exc.strerror or exc}") from exc
            except UnicodeDecodeError:  # its bytes are not echoed: the file may hold anything
                raise ConfigError(f"cannot read sample ids from {path}: not UTF-8 text") from None
            ids += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        else:
            ids.append(value)
    return ids


def add_forget_arguments(parser: argparse.ArgumentParser) -> None:
    """The forget set: sample ids, subjects or a class (exactly one kind)."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--forget-ids", nargs="+", metavar="ID",
                       help="sample ids to forget; @FILE reads them from FILE, one a line")
    group.add_argument("--forget-subjects", nargs="+", metavar="SUBJECT",
                       help="subjects whose samples to forget")
    group.add_argument("--forget-class", type=integer(0), metavar="K", help="forget every sample of class K")
    parser.add_argument("--subjects", metavar="PATH",
                        help="subject map (CSV/Parquet: subject_id, sample_id); default: the synthetic one")


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="where the data set's files are (default: LETHE_DATA_DIR)")
    parser.add_argument("--device", type=device_argument,
                        help="cpu, cuda, cuda:1 (default: cuda when available)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def forget_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"forget_ids": read_ids(args.forget_ids), "forget_subjects": list(args.forget_subjects or []),
            "forget_class": args.forget_class, "subjects_file": args.subjects}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def run(args: argparse.Namespace) -> int:
    from lethe.steps.evaluate import evaluate

    check_out_dir(args.out, sources=(args.model, args.parent))  # reports inside a model would change it
    result = evaluate(args.model, args.parent, args.dataset, **forget_kwargs(args), scenario=args.scenario,
                      out_dir=args.out, thresholds=args.thresholds, device=args.device,
                      progress=not args.no_progress, data_dir=args.data_dir)
    for role, m in (("parent", result.parent), ("candidate", result.candidate)):
        print(f"{role:9s} retain {_pct(m['retain_accuracy'])}  forget {_pct(m['forget_accuracy'])}  "
              f"test {_pct(m['test_accuracy'])}  MIA reference {_pct(m['mia']['reference_member_rate'])}  "
              f"gap {m['mia']['gap']:+.3f}")
    gate = result.gate
    print(f"gate: {gate['decision']}")
    for reason in gate["reasons"]:
        print(f"  - {reason}")
    plots = ", ".join(result.evidence["plots"])
    print(f"evidence in {args.out}: metrics.json, report.html, report.json, {plots}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="evaluate an unlearned model against its parent and decide the gate",
        description="Measure retain/forget/test accuracy and membership inference for a candidate and its "
                    "parent, decide the promotion gate, and write DIR/metrics.json, DIR/report.html, "
                    "DIR/report.json and PNG plots.")
    parser.add_argument("--model", required=True, metavar="PATH", help="the candidate's model directory")
    parser.add_argument("--parent", required=True, metavar="PATH", help="the parent's model directory")
    parser.add_argument("--dataset", metavar="NAME|URI",
                        help="the data set both were trained on, or its published copy (default: "
                             "LETHE_DATASET_URI, else the candidate's card); other data is refused")
    add_forget_arguments(parser)
    parser.add_argument("--scenario", required=True, choices=tuple(SCENARIOS),
                        help=f"what is forgotten, which decides how the gate judges it: "
                             f"{describe_scenarios()}")
    parser.add_argument("--out", required=True, metavar="DIR", help="where to write the evidence")
    parser.add_argument("--thresholds", metavar="YAML|URI",
                        help="gate thresholds overriding the defaults (a YAML file, inline YAML or a "
                             "storage URI)")
    add_runtime_arguments(parser)
    parser.set_defaults(func=run)
