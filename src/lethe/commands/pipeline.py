"""`lethe pipeline compile|run|submit|schedule`: the KFP pipelines of pipelines/.

Examples:
  lethe pipeline compile --out pipelines/compiled
  lethe pipeline run --local scheduled -p max_requests=50
  lethe pipeline run --local unlearning -p forget_class=3 -p scenario=class
  lethe pipeline submit --host http://localhost:8080 scheduled
  lethe pipeline schedule --host http://ml-pipeline.kubeflow:8888 --cron "0 0 2 * * *" \\
      --name lethe-nightly-deletion          # every day at 02:00:00 (six fields, seconds first)
  lethe pipeline schedule ... --replace      # a new cron, image or GPU setting: delete, then create

kfp is imported only when one of these runs (lethe.kfp; the rest of lethe never imports it), and only
after the parameters (lethe.kfp.params), the cron and the KFP host were checked: a refusal takes seconds.
Without LETHE_CUDA_IMAGE the pipelines request no GPU; compile, submit and schedule say so on stderr.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from lethe.commands._validation import check_out_dir, integer
from lethe.config import settings
from lethe.errors import PipelineError

if TYPE_CHECKING:
    from lethe.kfp.summary import RunSummary

DEFAULT_PIPELINE = "scheduled"
DEFAULT_EXPERIMENT = "lethe"


def _add_pipeline_args(parser: argparse.ArgumentParser) -> None:
    from lethe.kfp.params import SCHEMAS  # stdlib only: no kfp, no pipelines

    parser.add_argument("pipeline", nargs="?", default=DEFAULT_PIPELINE,
                        help=f"{' | '.join(SCHEMAS)} (default {DEFAULT_PIPELINE})")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a pipeline parameter (repeatable), checked by its type and range before "
                             "anything runs or is sent; lists as JSON, e.g. "
                             "forget_ids='[\"digits/train/3\"]'")


def _say_gpu_note() -> None:
    from lethe.kfp.compiler import gpu_note

    note = gpu_note()
    if note:
        print(f"lethe: {note}", file=sys.stderr)


def compile_command(args: argparse.Namespace) -> int:
    from lethe.kfp.catalog import pipeline_names
    from lethe.kfp.compiler import compile_pipeline

    check_out_dir(args.out)
    names = args.names or pipeline_names()
    unknown = [name for name in names if name not in pipeline_names()]
    if unknown:  # refused before the first file is written
        raise PipelineError(f"unknown pipeline(s) {', '.join(map(repr, unknown))}; choose from "
                            f"{', '.join(pipeline_names())}")
    _say_gpu_note()
    # All or nothing: every pipeline compiles into a temporary directory beside --out, then moves in.
    out = Path(args.out)
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=out, prefix=".compiling-") as staging:
            staged = [(name, compile_pipeline(name, Path(staging) / f"{name}.yaml")) for name in names]
            for name, path in staged:
                target = out / path.name
                path.replace(target)
                print(f"{name:12s} {target}")
    except BaseException:
        if made:
            shutil.rmtree(out, ignore_errors=True)
        raise
    return 0


def run_command(args: argparse.Namespace) -> int:
    if not args.local:
        raise PipelineError("`lethe pipeline run` runs on this machine: pass --local "
                            "(use `lethe pipeline submit --host URL` for a cluster)")
    from lethe.kfp.catalog import parse_params
    from lethe.kfp.warm_tasks import mode as local_tasks_mode

    params = parse_params(args.pipeline, args.param)  # before anything runs or is claimed
    local_tasks_mode()  # LETHE_LOCAL_TASKS
    root = Path(args.pipeline_root or settings().home_dir() / "kfp")
    check_out_dir(root, flag="--pipeline-root")
    from lethe.kfp.local import run_local

    if args.pipeline in SUMMARIZED:  # after every check: it opens the registry's client
        from lethe.kfp.summary import prepare_summary

        prepared = prepare_summary()

    def show(task: str, state: str) -> None:
        print(f"  {task:32s} {state}", file=sys.stderr, flush=True)

    log_path = None if args.verbose_tasks else root / "logs" / f"{args.pipeline}.log"
    print(f"running pipeline {args.pipeline} with kfp.local (pipeline root {root})", file=sys.stderr)
    run = run_local(args.pipeline, params, pipeline_root=root, log_path=log_path, on_task=show,
                    cluster_env=args.cluster_env)
    where = f"; task logs in {log_path}" if log_path else ""
    summary = None
    if args.pipeline in SUMMARIZED:
        prepared.join()
        summary = _summary(run.run_id)
    if summary is not None:
        print(summary.text())
    if not run.succeeded:
        print(f"pipeline {args.pipeline} FAILED after {run.seconds:.1f} s: {run.error}{where}")
        return 1
    failed = summary.failed_requests if summary is not None else []
    if failed:  # a run whose tasks all succeeded may still have honoured none of some requests
        print(f"pipeline {args.pipeline}: its tasks succeeded in {run.seconds:.1f} s, but {len(failed)} of "
              f"{len(summary.requests)} request(s) FAILED (reasons above; `lethe request amend|cancel|retry`)"
              f"{where}")
        return 1
    print(f"pipeline {args.pipeline} succeeded in {run.seconds:.1f} s{where}")
    return 0


# Pipelines that register a version or settle requests: their run ends with what it did.
SUMMARIZED = ("scheduled", "unlearning")


def _summary(run_id: str) -> RunSummary | None:
    """What the run did (`lethe.kfp.summary.summarize_run`); None, said on stderr, when it cannot be read."""
    from lethe.errors import LetheError
    from lethe.kfp.summary import summarize_run

    try:
        return summarize_run(run_id)
    except LetheError as exc:
        print(f"lethe: cannot summarize run {run_id}: {exc}", file=sys.stderr)
        return None


def _checked_params(args: argparse.Namespace) -> dict:
    """The `-p` items typed by the pipeline's schema, then the KFP host: both before kfp or the pipelines
    are imported, so a refusal takes seconds, prints one line and sends nothing."""
    from lethe.kfp.host import check_host
    from lethe.kfp.params import parse_param_items

    params = parse_param_items(args.pipeline, args.param)
    check_host(args.host)
    return params


def submit_command(args: argparse.Namespace) -> int:
    params = _checked_params(args)
    from lethe.kfp.compiler import submit

    _say_gpu_note()
    run_id = submit(args.pipeline, params, host=args.host, experiment=args.experiment,
                    run_name=args.run_name, namespace=args.namespace)
    print(f"submitted {args.pipeline}: run {run_id}")
    return 0


def schedule_command(args: argparse.Namespace) -> int:
    from lethe.kfp.scheduler import validate_cron

    cron = validate_cron(args.cron)  # before anything else: a bad cron changes nothing
    params = _checked_params(args)
    from lethe.kfp.scheduler import schedule

    _say_gpu_note()
    done = schedule(args.pipeline, params, host=args.host, cron=cron, job_name=args.name,
                    experiment=args.experiment, namespace=args.namespace,
                    max_concurrency=args.max_concurrency, catchup=args.catchup, replace=args.replace)
    what = f"cron {done.cron!r}, pipeline version {done.pipeline_version}"
    if done.action == "unchanged":
        print(f"recurring run {done.job_name} unchanged ({what}): {done.recurring_run_id}")
    elif done.action == "created":
        print(f"created recurring run {done.job_name} ({what}): {done.recurring_run_id}")
    else:
        print(f"replaced recurring run {done.job_name}: deleted {done.replaced_id}, created "
              f"{done.recurring_run_id} ({what})")
        for change in done.changes:
            print(f"  changed: {change}")
        print("  (KFP cannot update a recurring run: between the delete and the create, none was scheduled)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pipeline", help="compile, run locally, submit or schedule KFP pipelines",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="pipeline_command", metavar="ACTION", required=True)

    compile_parser = commands.add_parser("compile", help="write every pipeline's YAML")
    compile_parser.add_argument("--out", required=True, help="output directory")
    compile_parser.add_argument("names", nargs="*", help="pipelines to compile (default: all)")
    compile_parser.set_defaults(func=compile_command)

    run_parser = commands.add_parser("run", help="run a pipeline on this machine (kfp.local)")
    _add_pipeline_args(run_parser)
    run_parser.add_argument("--local", action="store_true", help="run with kfp.local (subprocesses)")
    run_parser.add_argument("--pipeline-root", help="where task outputs go (default LETHE_HOME/kfp)")
    run_parser.add_argument("--verbose-tasks", action="store_true",
                            help="stream every task's output here instead of into a log file")
    run_parser.add_argument("--cluster-env", action="store_true",
                            help="give each task only the settings and credentials its compiled task gets "
                                 "on a cluster (the lethe-config keys, the Secrets of its step's stores): "
                                 "a missing credential fails here, not in a pod")
    run_parser.set_defaults(func=run_command)

    for name, helptext, func in (("submit", "start one run on a KFP cluster", submit_command),
                                 ("schedule", "create a recurring run on a KFP cluster", schedule_command)):
        sub = commands.add_parser(name, help=helptext)
        _add_pipeline_args(sub)
        sub.add_argument("--host", required=True, help="the KFP API, e.g. http://ml-pipeline.kubeflow:8888")
        sub.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="KFP experiment (default lethe)")
        sub.add_argument("--namespace", help="KFP namespace (multi-user installs)")
        sub.set_defaults(func=func)
        if name == "submit":
            sub.add_argument("--run-name", help="display name of the run")
        else:
            sub.add_argument("--cron", required=True,
                             help='six fields, seconds first: "0 0 2 * * *" is 02:00:00 every day')
            sub.add_argument("--name", required=True,
                             help="the recurring run's name; the same settings again change nothing")
            sub.add_argument("--replace", action="store_true",
                             help="when a recurring run of this name exists with other settings (cron, "
                                  "parameters, or the pipeline as compiled here: image, GPU, resources), "
                                  "delete it and create it anew (KFP has no update)")
            sub.add_argument("--max-concurrency", type=integer(1), default=1,
                             help="runs at once (default 1)")
            sub.add_argument("--catchup", action="store_true", help="run the schedules missed while paused")
