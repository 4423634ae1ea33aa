"""`lethe unlearn`: forgetting of sample ids, subjects or a class (LFSSD by default), α chosen per request."""

from __future__ import annotations

import argparse

from lethe.commands._validation import alpha_argument, check_out_dir, integer, positive_number
from lethe.commands.evaluate import add_forget_arguments, add_runtime_arguments, forget_kwargs
from lethe.commands.remedy import add_ladder_arguments, check_ladder_arguments, climb_and_report, work_dir


def run(args: argparse.Namespace) -> int:
    from lethe.config import settings
    from lethe.forgetting.alpha import parse_alpha
    from lethe.steps.unlearn import unlearn

    check_out_dir(args.out, sources=(args.model,))  # writing over the parent would destroy it
    climbing = bool(args.repair or args.ladder)
    if climbing:  # the policy, the method and the thresholds are refused before anything is computed
        check_ladder_arguments(args)
    # The pipelines' importances cache: a model's full-data pass runs once, whoever asks for it.
    cache_root = None if args.no_cache else settings().artifacts
    dampened = work_dir(args.out) / "dampen" if climbing else args.out
    result = unlearn(args.model, args.dataset, **forget_kwargs(args), alpha=parse_alpha(args.alpha),
                     cutoff=args.cutoff, thresholds=args.thresholds, lam=args.lam,
                     importances=args.importances, batch_size=args.batch_size, method=args.method,
                     out_dir=dampened, device=args.device, progress=not args.no_progress,
                     data_dir=args.data_dir, cache_root=cache_root)
    if not result.importances["computed"] and args.importances is None:
        print(f"full-data importances from the cache ({result.importances['cache_uri']})")
    met = "met" if result.target_met else "NOT met"
    print(f"{dampened}: forgot {result.forget_size} samples with {result.method.upper()}, "
          f"α={result.alpha:.4g} ({result.alpha_method}), λ={result.lam:g}, "
          f"{'every layer' if result.cutoff == 'all' else 'from ' + result.cutoff + ' on'}; "
          f"{result.total_selected} parameters dampened ({100 * result.fraction_dampened:.3f}%)")
    target = result.target
    print(f"{result.scenario} target {met}: {target['criterion']} {target['value']:.4f} "
          f"(limit {target['limit']:g}); agreement with the parent on retained samples "
          f"{100 * result.retain_agreement:.2f}%")
    if climbing:
        return climb_and_report(args, dampened, args.model, scenario=result.scenario)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "unlearn", help="forget samples, subjects or a class from a model (LFSSD by default)",
        description="Dampen the parameters that matter disproportionately to the forget set (selective "
                    "synaptic dampening with LFSSD or SSD importances) and write a model directory plus "
                    "DIR/dampening.json. By default both where dampening acts and how much are searched "
                    "per request: for every layer and each stage boundary, the largest α whose model "
                    "meets the forgetting target; the one that keeps most of the parent's predictions wins.")
    parser.add_argument("--model", required=True, metavar="PATH", help="the model directory to unlearn from")
    parser.add_argument("--dataset", metavar="NAME|URI",
                        help="the data set it was trained on, or its published copy (default: "
                             "LETHE_DATASET_URI, else the model card's); other data is refused")
    add_forget_arguments(parser)
    parser.add_argument("--alpha", type=alpha_argument, default="search", metavar="A|assd|search",
                        help="selection threshold α: a number, 'assd' (percentile rule) or "
                             "'search' (default)")
    parser.add_argument("--cutoff", metavar="search|all|STAGE",
                        help="where dampening may act: 'search' (every layer and each stage boundary, the "
                             "default with --alpha search), 'all' (every layer, the default with a given "
                             "α) or a stage name of the model (e.g. block3 of convnet)")
    parser.add_argument("--thresholds", metavar="YAML|URI",
                        help="the gate's thresholds (a YAML file, inline YAML or a storage URI); the same "
                             "limits are the search's forgetting targets")
    parser.add_argument("--lam", type=positive_number, default=1.0, metavar="L",
                        help="dampening constant λ (default 1)")
    # Not `choices=`: listing the registry would import torch for every `lethe` command; the step
    # refuses an unknown name in one line, naming the registered ones.
    parser.add_argument("--method", metavar="NAME",
                        help="importance method: lfssd (label-free) or ssd (needs labels), or any "
                             "registered one (default: the given importances', else lfssd)")
    parser.add_argument("--importances", metavar="URI",
                        help="full-data importances (file, directory or s3://); default: the "
                             "importances cache under LETHE_ARTIFACTS, computed and stored there when absent")
    parser.add_argument("--no-cache", action="store_true",
                        help="neither read nor fill the importances cache")
    parser.add_argument("--batch-size", type=integer(1), metavar="N",
                        help="batch size of the importance passes (default: the given "
                             "importances', else 1 = per sample)")
    parser.add_argument("--out", required=True, metavar="DIR", help="the model directory to write")
    add_ladder_arguments(parser)
    add_runtime_arguments(parser)
    parser.set_defaults(func=run)
