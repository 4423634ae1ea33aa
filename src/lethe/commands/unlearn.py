"""`lethe unlearn`: LFSSD forgetting of sample ids, subjects or a class, α chosen per request."""

from __future__ import annotations

import argparse

from lethe.commands.evaluate import add_forget_arguments, add_runtime_arguments, forget_kwargs


def run(args: argparse.Namespace) -> int:
    from lethe.steps.unlearn import parse_alpha, unlearn

    result = unlearn(args.model, args.dataset, **forget_kwargs(args), alpha=parse_alpha(args.alpha),
                     lam=args.lam, importances=args.importances, batch_size=args.batch_size, out_dir=args.out,
                     device=args.device, progress=not args.no_progress, data_dir=args.data_dir)
    s = result["summary"]
    target = result["target"]
    met = "met" if s["target_met"] else "NOT met"
    print(f"{args.out}: forgot {s['forget_size']} samples with α={s['alpha']:.4g} ({s['alpha_method']}), "
          f"λ={s['lam']:g}; {s['total_selected']} parameters dampened ({100 * s['fraction_dampened']:.3f}%)")
    print(f"{result['scenario']} target {met}: {target['criterion']} {target['value']:.4f} "
          f"(limit {target['limit']:g}); agreement with the parent on retained samples "
          f"{100 * s['retain_agreement']:.2f}%")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "unlearn", help="forget samples, subjects or a class from a model (LFSSD)",
        description="Dampen the parameters that matter disproportionately to the forget set (LFSSD) and "
                    "write a model directory plus DIR/dampening.json. α is searched per request by "
                    "default: the largest α whose model meets the forgetting target.")
    parser.add_argument("--model", required=True, metavar="PATH", help="the model directory to unlearn from")
    parser.add_argument("--dataset", required=True, metavar="NAME", help="the data set it was trained on")
    add_forget_arguments(parser)
    parser.add_argument("--alpha", default="search", metavar="A|assd|search",
                        help="selection threshold α: a number, 'assd' (percentile rule) or "
                             "'search' (default)")
    parser.add_argument("--lam", type=float, default=1.0, metavar="L",
                        help="dampening constant λ (default 1)")
    parser.add_argument("--importances", metavar="URI",
                        help="full-data LFSSD importances (file, directory or s3://); "
                             "computed when absent")
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help="batch size of the importance passes (default: the given "
                             "importances', else 1 = per sample)")
    parser.add_argument("--out", required=True, metavar="DIR", help="the model directory to write")
    add_runtime_arguments(parser)
    parser.set_defaults(func=run)
