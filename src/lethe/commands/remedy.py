"""`lethe remedy`: climb the escalation ladder from a candidate the gate refused (evaluate → repair →
evaluate, as the ladder policy allows); `lethe unlearn --repair METHOD` does the same after dampening."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lethe.commands._validation import check_out_dir
from lethe.commands.evaluate import add_forget_arguments, add_runtime_arguments, forget_kwargs


def work_dir(out: str | Path) -> Path:
    """Where the ladder's rungs work: `<out>.ladder` beside the final candidate."""
    out = Path(out)
    return out.with_name(f"{out.name}.ladder")


def add_ladder_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repair", metavar="METHOD|auto",
                        help="climb the ladder after dampening with this repair method (a registered one, "
                             "e.g. retain_finetune) or auto (the scenario's rung for the gate's refusal); "
                             "the working rungs go to OUT.ladder, the final candidate to OUT")
    parser.add_argument("--ladder", metavar="YAML|URI",
                        help="the ladder policy (rungs, the repair's method and budget; a YAML file, inline "
                             "YAML or a storage URI; default: lethe/evaluation/ladder.yaml)")


def check_ladder_arguments(args: argparse.Namespace) -> None:
    """Refuse a bad policy, method or thresholds in one line, before anything is computed."""
    from lethe.evaluation.ladder import load_ladder
    from lethe.evaluation.thresholds import load_thresholds
    from lethe.unlearning.repair import get_repair

    load_ladder(args.ladder)
    load_thresholds(getattr(args, "thresholds", None))
    if args.repair and args.repair != "auto":
        from lethe.errors import RepairError
        from lethe.forgetting.scenarios import infer_scenario

        name = get_repair(args.repair).name
        row = infer_scenario(getattr(args, "scenario", None), forget_ids=args.forget_ids,
                             forget_subjects=args.forget_subjects, forget_class=args.forget_class)
        if name not in row.repair_rungs:
            raise RepairError(f"the {row.name} scenario allows the repair rung(s) "
                              f"{', '.join(row.repair_rungs) or 'none'}, not {name}")
    check_out_dir(work_dir(args.out), flag="--out (its .ladder folder)")


def _rung(rung: dict[str, Any]) -> str:
    from lethe.registry.description import rung_line

    return rung_line(rung)


def climb_and_report(args: argparse.Namespace, candidate: str | Path, parent: str | Path, *,
                     scenario: str | None = None, done: str = "dampen") -> int:
    from lethe.steps.remedy import climb_ladder

    kwargs = forget_kwargs(args)
    run = climb_ladder(candidate, parent, args.dataset, **kwargs, scenario=scenario, out_dir=args.out,
                       work_dir=work_dir(args.out), done=done, ladder=args.ladder,
                       method=args.repair if args.repair else None, thresholds=args.thresholds,
                       device=args.device, progress=not args.no_progress, data_dir=args.data_dir)
    for rung in run.rungs:
        print(f"rung {_rung(rung)}")
    for request, outcome in (run.rungs[-1].get("requests") or {}).items():
        print(f"  request {request}: {outcome}")
    print(f"{run.out_dir}: gate {run.decision} after {run.rungs[-1].get('rung')}; "
          f"evidence in {run.evaluation_dir}")
    if run.next == "retrain":
        print("the ladder's next rung is retrain: `lethe retrain --model models:/NAME/VERSION` (it reads "
              "what the lineage forgot from the registry and the ledger)")
    return 0


def run(args: argparse.Namespace) -> int:
    check_out_dir(args.out, sources=(args.candidate, args.parent))
    check_ladder_arguments(args)
    return climb_and_report(args, args.candidate, args.parent, scenario=args.scenario, done=args.done)


def register(subparsers: argparse._SubParsersAction) -> None:
    from lethe.forgetting.scenarios import SCENARIOS

    parser = subparsers.add_parser(
        "remedy", help="climb the escalation ladder from a refused candidate (repair, as the policy allows)",
        description="Evaluate the candidate against its parent; while the gate refuses and the ladder policy "
                    "has a rung that addresses the refusal, climb it (repair: a budgeted training on the "
                    "candidate, a share of the root recipe's sample-steps) and evaluate again. Writes every "
                    "rung under OUT.ladder and the last candidate, with its ladder.json, to OUT.")
    parser.add_argument("--candidate", required=True, metavar="PATH", help="the candidate's model directory")
    parser.add_argument("--parent", required=True, metavar="PATH", help="the parent's model directory")
    parser.add_argument("--dataset", metavar="NAME|URI",
                        help="the data set both were trained on (default: LETHE_DATASET_URI, else the "
                             "card's)")
    add_forget_arguments(parser)
    parser.add_argument("--scenario", choices=tuple(SCENARIOS), help="what is forgotten (default: inferred)")
    parser.add_argument("--done", choices=("dampen", "repair"), default="dampen",
                        help="the rung that made the candidate (default: dampen)")
    parser.add_argument("--thresholds", metavar="YAML|URI",
                        help="the gate's thresholds (default: the shipped ones)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="the model directory of the last candidate")
    add_ladder_arguments(parser)
    add_runtime_arguments(parser)
    parser.set_defaults(func=run)
