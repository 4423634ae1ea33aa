"""Bad input to every command: one line on stderr, exit code 2, no traceback, no file changed.

Each case is (id, argv, environment overrides, a fragment the error line must hold). `{name}` in
argv or environment stands for a path of the prepared home (see conftest.py). Refusals must come
before any side effect: every file under the home keeps its sha256 and mtime, the `--out` a case
names is not created, and the only new files allowed are empty stores made on first use.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.robustness.conftest import AttackHome, home_snapshot, run_in_process

INVALID_UTF8 = os.fsdecode(b"subject-\xff\xfe")  # what Python makes of undecodable argv bytes
ADD = ["request", "add", "--subject", "x"]
UNLEARN = ["unlearn", "--model", "{model}", "--dataset", "digits", "--no-progress"]
UNLEARN_CLASS = [*UNLEARN, "--forget-class", "3"]
TRAIN = ["train", "--dataset", "digits", "--model", "convnet", "--epochs", "1", "--no-progress"]
EVALUATE = ["evaluate", "--model", "{model}", "--parent", "{model}", "--dataset", "digits", "--no-progress"]
EVAL_CLASS = [*EVALUATE, "--forget-class", "3", "--scenario", "class"]
NO_GPU_ONLY = pytest.mark.skipif(
    "torch" in sys.modules and sys.modules["torch"].cuda.is_available(), reason="a GPU is visible here")


def case(case_id: str, argv: list[str], fragment: str, env: dict[str, str | None] | None = None,
         *marks: pytest.MarkDecorator) -> object:
    return pytest.param(argv, env or {}, fragment, id=case_id, marks=marks)


CASES = [
    # --- usage (argparse): one line, not the usage block -------------------------------------------
    case("no-command", [], "required: COMMAND"),
    case("unknown-command", ["frobnicate"], "invalid choice"),
    case("unknown-global-flag", ["--frobnicate", "request", "list"], "unrecognized arguments"),
    case("request-no-action", ["request"], "required: ACTION"),
    case("request-unknown-action", ["request", "frobnicate"], "invalid choice"),
    case("request-add-no-subject", ["request", "add"], "required: --subject"),
    case("request-list-unknown-flag", ["request", "list", "--frobnicate"], "unrecognized arguments"),
    case("review-no-action", ["review"], "required: ACTION"),
    case("model-no-action", ["model"], "required: ACTION"),
    case("model-register-no-dir", ["model", "register"], "required: DIR"),
    case("data-no-action", ["data"], "required: ACTION"),
    case("pipeline-no-action", ["pipeline"], "required: ACTION"),
    case("train-nothing", ["train"], "required"),
    case("unlearn-nothing", ["unlearn"], "required"),
    case("evaluate-nothing", ["evaluate"], "required"),
    case("unlearn-two-forget-kinds", [*UNLEARN, "--forget-class", "3", "--forget-ids", "a", "--out", "{new}"],
         "not allowed with"),
    case("unlearn-no-forget-kind", [*UNLEARN, "--out", "{new}"], "one of the arguments"),
    case("evaluate-bad-scenario", [*EVALUATE, "--forget-class", "3", "--scenario", "most", "--out", "{new}"],
         "invalid choice"),
    case("data-info-bad-split", ["data", "info", "digits", "--split", "validation"], "invalid choice"),
    # --- request add ----------------------------------------------------------------------------------
    case("deadline-days-overflow", [*ADD, "--deadline-days", "99999999999"],
         "deadline must be 1 to 3650 days"),
    case("deadline-days-above-max", [*ADD, "--deadline-days", "3651"],
         "deadline must be 1 to 3650 days"),
    case("deadline-days-zero", [*ADD, "--deadline-days", "0"], "at least 1"),
    case("deadline-days-negative", [*ADD, "--deadline-days", "-5"], "at least 1"),
    case("deadline-days-text", [*ADD, "--deadline-days", "soon"],
         "not an integer"),
    case("deadline-days-fraction", [*ADD, "--deadline-days", "1.5"],
         "not an integer"),
    case("received-underflows-in-utc", [*ADD, "--received",
                                        "0001-01-01T00:00:00+14:00"], "out of range in UTC"),
    case("received-overflows-in-utc", [*ADD, "--received",
                                       "9999-12-31T23:59:59-14:00"], "out of range in UTC"),
    case("received-in-future", [*ADD, "--received", "2999-01-01"],
         "cannot be received in the future"),
    case("received-not-iso", [*ADD, "--received", "yesterday"], "not an ISO"),
    case("received-bad-month", [*ADD, "--received", "2020-13-01"], "not an ISO"),
    case("received-empty", [*ADD, "--received", ""], "not an ISO"),
    case("subject-empty", ["request", "add", "--subject", ""], "must not be empty"),
    case("subject-blank", ["request", "add", "--subject", "   "], "must not be empty"),
    case("subject-invalid-utf8", ["request", "add", "--subject", INVALID_UTF8], "--subject: not valid UTF-8"),
    case("samples-invalid-utf8", [*ADD, "--samples", INVALID_UTF8],
         "--samples: not valid UTF-8"),
    case("samples-none-given", [*ADD, "--samples"], "expected at least one"),
    case("no-subject-key", ADD, "LETHE_SUBJECT_KEY is not set",
         {"LETHE_SUBJECT_KEY": None}),
    case("ledger-unparsable", [*ADD, "--ledger", "notaurl"], "invalid ledger URL"),
    case("ledger-mysql", [*ADD, "--ledger", "mysql://h/db"],
         "unsupported ledger database"),
    case("ledger-uncreatable-dir", [*ADD, "--ledger", "sqlite:////proc/no/l.db"],
         "cannot create the ledger's directory"),
    case("ledger-under-a-file", [*ADD, "--ledger", "sqlite:///{plain}/l.db"],
         "cannot create the ledger's directory"),
    case("ledger-not-a-database", [*ADD, "--ledger", "sqlite:///{plain}"],
         "not a database"),
    case("ledger-is-a-directory", [*ADD, "--ledger", "sqlite:///{home}"],
         "unable to open database file"),
    case("ledger-postgres-refused", [*ADD, "--ledger",
                                     "postgresql://lethe:secret@127.0.0.1:9/ledger"], "ledger database"),
    case("ledger-env-unparsable", ADD, "invalid ledger URL",
         {"LETHE_LEDGER_URL": "notaurl"}),
    case("home-is-a-file", ADD, "is not a directory", {"LETHE_HOME": "{plain}"}),
    case("home-under-a-file", ADD, "is a file",
         {"LETHE_HOME": "{plain}/home"}),
    # --- request list / show / export / retry ---------------------------------------------------------
    case("list-unknown-state", ["request", "list", "--state", "forgotten"], "unknown state"),
    case("list-ledger-not-a-database", ["request", "list", "--ledger", "sqlite:///{plain}"],
         "not a database"),
    case("list-ledger-uncreatable", ["request", "list", "--ledger", "sqlite:////proc/no/l.db"],
         "no erasure ledger at /proc/no/l.db"),  # only reads: refused, not created
    case("list-home-is-a-file", ["request", "list", "--json"], "is not a directory",
         {"LETHE_HOME": "{plain}"}),
    case("list-ledger-env-not-a-database", ["request", "list"], "not a database",
         {"LETHE_LEDGER_URL": "sqlite:///{plain}"}),
    case("show-unknown-id", ["request", "show", "no-such-request"], "no erasure request"),
    case("show-json-unknown-id", ["request", "show", "--json", "no-such-request"], "no erasure request"),
    case("show-invalid-utf8", ["request", "show", INVALID_UTF8], "not valid UTF-8"),
    case("show-no-id", ["request", "show"], "required: id"),
    case("export-out-is-a-file", ["request", "export", "--out", "{plain}"], "is an existing file"),
    case("export-out-under-a-file", ["request", "export", "--out", "{plain}/certs"], "is a file"),
    case("retry-unknown-id", ["request", "retry", "no-such-request"], "no erasure request"),
    case("retry-a-pending-request", ["request", "retry", "{pending_id}"], "pending"),
    case("retry-reason-invalid-utf8", ["request", "retry", "{pending_id}", "--reason", INVALID_UTF8],
         "--reason: not valid UTF-8"),
    # --- review -----------------------------------------------------------------------------------------
    case("review-list-unknown-scheme", ["review", "list", "--tracking-uri", "bogus://x"], "MLflow"),
    case("review-list-env-unknown-scheme", ["review", "list"], "MLflow", {"LETHE_TRACKING_URI": "bogus://x"}),
    case("review-list-home-is-a-file", ["review", "list"], "is not a directory", {"LETHE_HOME": "{plain}"}),
    case("review-list-tracking-uncreatable", ["review", "list", "--tracking-uri", "sqlite:////proc/no/m.db"],
         "/proc/no"),
    case("review-list-tracking-not-a-database", ["review", "list", "--tracking-uri", "sqlite:///{plain}"],
         "MLflow"),
    case("review-approve-no-by", ["review", "approve", "1", "--reason", "ok"], "required: --by"),
    case("review-reject-no-reason", ["review", "reject", "1", "--by", "Dana"], "required: --reason"),
    case("review-approve-no-version", ["review", "approve", "--by", "Dana", "--reason", "ok"],
         "required: version"),
    case("review-by-invalid-utf8", ["review", "approve", "1", "--by", INVALID_UTF8, "--reason", "ok"],
         "--by: not valid UTF-8"),
    # --- model register ---------------------------------------------------------------------------------
    case("register-missing-dir", ["model", "register", "{missing}"], "no model directory"),
    case("register-a-file", ["model", "register", "{plain}"], "no model directory"),
    case("register-not-a-model-dir", ["model", "register", "{imp}"], "not a model directory"),
    case("register-num-classes-text", ["model", "register", "{bad-classes}"], "num_classes"),
    case("register-in-channels-zero", ["model", "register", "{bad-channels}"], "in_channels"),
    case("register-arch-kwargs-list", ["model", "register", "{bad-kwargs}"], "arch_kwargs"),
    case("register-card-not-json", ["model", "register", "{card-not-json}"], "cannot read"),
    case("register-card-wrong-format", ["model", "register", "{bad-format}"], "not a lethe model card"),
    case("register-dir-invalid-utf8", ["model", "register", INVALID_UTF8], "not valid UTF-8"),
    # --- train ------------------------------------------------------------------------------------------
    case("train-lr-nan", [*TRAIN, "--out", "{new}", "--lr", "nan"], "positive, finite"),
    case("train-lr-inf", [*TRAIN, "--out", "{new}", "--lr", "inf"], "positive, finite"),
    case("train-lr-zero", [*TRAIN, "--out", "{new}", "--lr", "0"], "positive, finite"),
    case("train-lr-negative", [*TRAIN, "--out", "{new}", "--lr", "-0.1"], "positive, finite"),
    case("train-lr-text", [*TRAIN, "--out", "{new}", "--lr", "fast"], "not a number"),
    case("train-epochs-zero", ["train", "--dataset", "digits", "--model", "convnet", "--epochs", "0",
                               "--out", "{new}"], "at least 1"),
    case("train-epochs-negative", ["train", "--dataset", "digits", "--model", "convnet", "--epochs", "-2",
                                   "--out", "{new}"], "at least 1"),
    case("train-epochs-text", ["train", "--dataset", "digits", "--model", "convnet", "--epochs", "many",
                               "--out", "{new}"], "not an integer"),
    case("train-batch-size-zero", [*TRAIN, "--out", "{new}", "--batch-size", "0"], "at least 1"),
    case("train-batch-size-negative", [*TRAIN, "--out", "{new}", "--batch-size", "-8"], "at least 1"),
    case("train-seed-negative", [*TRAIN, "--out", "{new}", "--seed", "-1"], "between 0 and"),
    case("train-seed-huge", [*TRAIN, "--out", "{new}", "--seed", "99999999999999999999999"], "between 0 and"),
    case("train-threads-zero", [*TRAIN, "--out", "{new}", "--threads", "0"], "between 1 and 1024"),
    case("train-threads-huge", [*TRAIN, "--out", "{new}", "--threads", "100000"], "between 1 and 1024"),
    case("train-device-tpu", [*TRAIN, "--out", "{new}", "--device", "tpu"], "unknown device 'tpu'"),
    case("train-device-xla", [*TRAIN, "--out", "{new}", "--device", "xla"], "unknown device 'xla'"),
    case("train-device-empty", [*TRAIN, "--out", "{new}", "--device", ""], "unknown device"),
    case("train-device-negative-index", [*TRAIN, "--out", "{new}", "--device", "cuda:-1"], "unknown device"),
    case("train-device-cpu-1", [*TRAIN, "--out", "{new}", "--device", "cpu:1"], "one CPU device"),
    case("train-device-cuda-no-gpu", [*TRAIN, "--out", "{new}", "--device", "cuda"], "no CUDA GPU",
         None, NO_GPU_ONLY),
    case("train-device-cuda-99", [*TRAIN, "--out", "{new}", "--device", "cuda:99"], "cuda:99"),
    case("train-out-is-a-file", [*TRAIN, "--out", "{plain}"], "is an existing file"),
    case("train-out-under-a-file", [*TRAIN, "--out", "{plain}/m"], "is a file"),
    case("train-out-is-the-model", ["train", "--dataset", "digits", "--model", "{model}", "--epochs", "1",
                                    "--out", "{model}"], "is the input model directory"),
    case("train-exclude-class-negative", [*TRAIN, "--out", "{new}", "--exclude-class", "-1"], "at least 0"),
    case("train-arch-width-negative", [*TRAIN, "--out", "{new}", "--arch-arg", "width=-1"], "bad arguments"),
    case("train-arch-width-text", [*TRAIN, "--out", "{new}", "--arch-arg", "width=wide"], "bad arguments"),
    case("train-arch-unknown-arg", [*TRAIN, "--out", "{new}", "--arch-arg", "depth=3"], "bad arguments"),
    case("train-arch-arg-no-equals", [*TRAIN, "--out", "{new}", "--arch-arg", "width"], "KEY=VALUE"),
    case("train-unknown-dataset", ["train", "--dataset", "nope", "--model", "convnet", "--epochs", "1",
                                   "--out", "{new}"], "unknown dataset"),
    case("train-unknown-model", ["train", "--dataset", "digits", "--model", "nope", "--epochs", "1",
                                 "--out", "{new}"], "unknown model"),
    case("train-model-dir-bad-card", ["train", "--dataset", "digits", "--model", "{bad-classes}", "--epochs",
                                      "1", "--out", "{new}"], "num_classes"),
    case("train-exclude-ids-file-missing", [*TRAIN, "--out", "{new}", "--exclude-ids-file", "{missing}"],
         "cannot read"),
    case("train-imagefolder-missing", ["train", "--dataset", "imagefolder:{missing}", "--model", "convnet",
                                       "--epochs", "1", "--out", "{new}"], "{missing}"),
    case("train-out-invalid-utf8", [*TRAIN, "--out", INVALID_UTF8], "--out: not valid UTF-8"),
    # --- unlearn ----------------------------------------------------------------------------------------
    case("unlearn-lam-inf", [*UNLEARN_CLASS, "--out", "{new}", "--lam", "inf"], "positive, finite"),
    case("unlearn-lam-nan", [*UNLEARN_CLASS, "--out", "{new}", "--lam", "nan"], "positive, finite"),
    case("unlearn-lam-zero", [*UNLEARN_CLASS, "--out", "{new}", "--lam", "0"], "positive, finite"),
    case("unlearn-lam-negative", [*UNLEARN_CLASS, "--out", "{new}", "--lam", "-1"], "positive, finite"),
    case("unlearn-lam-text", [*UNLEARN_CLASS, "--out", "{new}", "--lam", "one"], "not a number"),
    case("unlearn-alpha-inf", [*UNLEARN_CLASS, "--out", "{new}", "--alpha", "inf"], "positive, finite"),
    case("unlearn-alpha-nan", [*UNLEARN_CLASS, "--out", "{new}", "--alpha", "nan"], "positive, finite"),
    case("unlearn-alpha-zero", [*UNLEARN_CLASS, "--out", "{new}", "--alpha", "0"], "positive, finite"),
    case("unlearn-alpha-negative", [*UNLEARN_CLASS, "--out", "{new}", "--alpha", "-3"], "positive, finite"),
    case("unlearn-alpha-text", [*UNLEARN_CLASS, "--out", "{new}", "--alpha", "lots"], "'search' or 'assd'"),
    case("unlearn-batch-size-zero", [*UNLEARN_CLASS, "--out", "{new}", "--batch-size", "0"], "at least 1"),
    case("unlearn-batch-size-negative", [*UNLEARN_CLASS, "--out", "{new}", "--batch-size", "-4"],
         "at least 1"),
    case("unlearn-batch-size-text", [*UNLEARN_CLASS, "--out", "{new}", "--batch-size", "all"],
         "not an integer"),
    case("unlearn-device-tpu", [*UNLEARN_CLASS, "--out", "{new}", "--device", "tpu"], "unknown device 'tpu'"),
    case("unlearn-device-cuda-no-gpu", [*UNLEARN_CLASS, "--out", "{new}", "--device", "cuda"], "no CUDA GPU",
         None, NO_GPU_ONLY),
    case("unlearn-device-mixed-case", [*UNLEARN_CLASS, "--out", "{new}", "--device", "Cuda:x"],
         "unknown device"),
    case("unlearn-out-is-the-model", [*UNLEARN_CLASS, "--out", "{model}"], "is the input model directory"),
    case("unlearn-out-is-the-model-spelled-differently", [*UNLEARN_CLASS, "--out", "{model}/../model/"],
         "is the input model directory"),
    case("unlearn-out-is-a-file", [*UNLEARN_CLASS, "--out", "{plain}"], "is an existing file"),
    case("unlearn-out-is-a-model-file", [*UNLEARN_CLASS, "--out", "{model}/model.json"],
         "is an existing file"),
    case("unlearn-out-under-a-file", [*UNLEARN_CLASS, "--out", "{plain}/x"], "is a file"),
    case("unlearn-model-missing", ["unlearn", "--model", "{missing}", "--dataset", "digits", "--forget-class",
                                   "3", "--out", "{new}"], "no model directory"),
    case("unlearn-model-is-a-file", ["unlearn", "--model", "{plain}", "--dataset", "digits",
                                     "--forget-class", "3", "--out", "{new}"], "no model directory"),
    case("unlearn-card-width-negative", ["unlearn", "--model", "{bad-width}", "--dataset", "digits",
                                         "--forget-class", "3", "--out", "{new}"],
         "bad arguments for convnet"),
    case("unlearn-card-num-classes-text", ["unlearn", "--model", "{bad-classes}", "--dataset", "digits",
                                           "--forget-class", "3", "--out", "{new}"], "num_classes"),
    case("unlearn-card-in-channels-zero", ["unlearn", "--model", "{bad-channels}", "--dataset", "digits",
                                           "--forget-class", "3", "--out", "{new}"], "in_channels"),
    case("unlearn-card-arch-kwargs-list", ["unlearn", "--model", "{bad-kwargs}", "--dataset", "digits",
                                           "--forget-class", "3", "--out", "{new}"], "arch_kwargs"),
    case("unlearn-card-not-json", ["unlearn", "--model", "{card-not-json}", "--dataset", "digits",
                                   "--forget-class", "3", "--out", "{new}"], "cannot read"),
    case("unlearn-card-format", ["unlearn", "--model", "{bad-format}", "--dataset", "digits",
                                 "--forget-class", "3", "--out", "{new}"], "not a lethe model card"),
    case("unlearn-corrupt-weights", ["unlearn", "--model", "{corrupt-weights}", "--dataset", "digits",
                                     "--forget-class", "3", "--out", "{new}"], "corrupt checkpoint"),
    case("unlearn-class-negative", [*UNLEARN, "--forget-class", "-1", "--out", "{new}"], "at least 0"),
    case("unlearn-class-too-large", [*UNLEARN, "--forget-class", "10", "--out", "{new}"], "outside 0..9"),
    case("unlearn-class-huge", [*UNLEARN, "--forget-class", "99999999999999999999", "--out", "{new}"],
         "outside 0..9"),
    case("unlearn-unknown-sample", [*UNLEARN, "--forget-ids", "digits/train/999999", "--out", "{new}"],
         "not in digits/train"),
    case("unlearn-ids-file-missing", [*UNLEARN, "--forget-ids", "@{missing}", "--out", "{new}"],
         "cannot read sample ids"),
    case("unlearn-ids-file-empty", [*UNLEARN, "--forget-ids", "@{empty_ids}", "--out", "{new}"], "no"),
    case("unlearn-ids-invalid-utf8", [*UNLEARN, "--forget-ids", INVALID_UTF8, "--out", "{new}"],
         "--forget-ids: not valid UTF-8"),
    case("unlearn-unknown-subject", [*UNLEARN, "--forget-subjects", "nobody-at-all", "--out", "{new}"],
         "unknown to the subject map"),
    case("unlearn-subjects-file-missing", [*UNLEARN, "--forget-subjects", "s1", "--subjects", "{missing}",
                                           "--out", "{new}"], "{missing}"),
    case("unlearn-unknown-dataset", ["unlearn", "--model", "{model}", "--dataset", "nope", "--forget-class",
                                     "3", "--out", "{new}"], "unknown dataset"),
    case("unlearn-unknown-method", [*UNLEARN_CLASS, "--method", "fisher", "--out", "{new}"],
         "unknown importance method 'fisher'"),
    case("unlearn-importances-missing", [*UNLEARN_CLASS, "--importances", "{missing}", "--out", "{new}"],
         "importances"),
    case("unlearn-importances-garbage", [*UNLEARN_CLASS, "--importances", "{imp}/garbage.safetensors",
                                         "--out", "{new}"], "cannot read importances"),
    case("unlearn-importances-no-metadata", [*UNLEARN_CLASS, "--importances", "{imp}/no-metadata.safetensors",
                                             "--out", "{new}"], "no lethe importances metadata"),
    case("unlearn-importances-meta-not-json", [*UNLEARN_CLASS, "--importances", "{imp}/not-json.safetensors",
                                               "--out", "{new}"], "malformed importances metadata"),
    case("unlearn-importances-meta-list", [*UNLEARN_CLASS, "--importances", "{imp}/a-list.safetensors",
                                           "--out", "{new}"], "malformed importances metadata"),
    case("unlearn-importances-meta-missing-key", [*UNLEARN_CLASS, "--importances",
                                                  "{imp}/missing-key.safetensors", "--out", "{new}"],
         "malformed importances metadata"),
    case("unlearn-importances-meta-string-batch", [*UNLEARN_CLASS, "--importances",
                                                   "{imp}/string-batch.safetensors", "--out", "{new}"],
         "batch_size"),
    case("unlearn-importances-meta-bool", [*UNLEARN_CLASS, "--importances", "{imp}/bool-batches.safetensors",
                                           "--out", "{new}"], "num_batches"),
    case("unlearn-importances-meta-extra-key", [*UNLEARN_CLASS, "--importances",
                                                "{imp}/extra-key.safetensors", "--out", "{new}"], "surprise"),
    case("unlearn-importances-meta-zero-samples", [*UNLEARN_CLASS, "--importances",
                                                   "{imp}/zero-samples.safetensors", "--out", "{new}"],
         "at least one batch"),
    case("unlearn-importances-meta-unknown-method", [*UNLEARN_CLASS, "--importances",
                                                     "{imp}/unknown-method.safetensors", "--out", "{new}"],
         "unknown importance method"),
    # --- evaluate ---------------------------------------------------------------------------------------
    case("evaluate-out-is-a-file", [*EVAL_CLASS, "--out", "{plain}"], "is an existing file"),
    case("evaluate-out-under-a-file", [*EVAL_CLASS, "--out", "{plain}/e"], "is a file"),
    case("evaluate-device-tpu", [*EVAL_CLASS, "--out", "{new}", "--device", "tpu"], "unknown device"),
    case("evaluate-model-missing", ["evaluate", "--model", "{missing}", "--parent", "{model}", "--dataset",
                                    "digits", "--forget-class", "3", "--scenario", "class", "--out", "{new}"],
         "no model directory"),
    case("evaluate-parent-bad-card", ["evaluate", "--model", "{model}", "--parent", "{bad-classes}",
                                      "--dataset", "digits", "--forget-class", "3", "--scenario", "class",
                                      "--out", "{new}"], "num_classes"),
    case("evaluate-model-width-negative", ["evaluate", "--model", "{bad-width}", "--parent", "{model}",
                                           "--dataset", "digits", "--forget-class", "3", "--scenario",
                                           "class", "--out", "{new}"], "bad arguments for convnet"),
    case("evaluate-class-negative", [*EVALUATE, "--forget-class", "-1", "--scenario", "class",
                                     "--out", "{new}"], "at least 0"),
    case("evaluate-ids-file-missing", [*EVALUATE, "--forget-ids", "@{missing}", "--scenario", "subject",
                                       "--out", "{new}"], "cannot read sample ids"),
    case("evaluate-thresholds-missing", [*EVAL_CLASS, "--thresholds", "{missing}.yaml", "--out", "{new}"],
         "thresholds"),
    case("evaluate-thresholds-malformed", [*EVAL_CLASS, "--thresholds", "{bad_thresholds}",
                                           "--out", "{new}"], "thresholds"),
    # --- data -------------------------------------------------------------------------------------------
    case("data-info-unknown", ["data", "info", "nope"], "unknown dataset"),
    case("data-info-empty-name", ["data", "info", ""], "unknown dataset"),
    case("data-info-imagefolder-missing", ["data", "info", "imagefolder:{missing}"], "{missing}"),
    case("data-info-imagefolder-a-file", ["data", "info", "imagefolder:{plain}"], "{plain}"),
    case("data-subjects-unknown", ["data", "subjects", "nope"], "unknown dataset"),
    case("data-subjects-head-negative", ["data", "subjects", "digits", "--head", "-1"], "at least 0"),
    case("data-subjects-file-missing", ["data", "subjects", "digits", "--subjects", "{missing}"],
         "{missing}"),
    case("data-subjects-file-not-a-map", ["data", "subjects", "digits", "--subjects", "{plain}"], "subject"),
    # --- pipeline and demo ------------------------------------------------------------------------------
    case("pipeline-compile-out-is-a-file", ["pipeline", "compile", "--out", "{plain}"],
         "is an existing file"),
    case("pipeline-run-not-local", ["pipeline", "run", "scheduled"], "--local"),
    case("pipeline-run-root-is-a-file", ["pipeline", "run", "--local", "--pipeline-root", "{plain}"],
         "is an existing file"),
    case("pipeline-run-home-is-a-file", ["pipeline", "run", "--local"], "is not a directory",
         {"LETHE_HOME": "{plain}"}),
    # Parameters are checked before collect claims anything (the home's ledger holds pending requests).
    case("pipeline-run-lam-nan", ["pipeline", "run", "--local", "scheduled", "-p", "lam=NaN"],
         "lam must be a finite number"),
    case("pipeline-run-max-requests-negative", ["pipeline", "run", "--local", "scheduled", "-p",
                                                "max_requests=-1"], "max_requests must be between"),
    case("pipeline-run-max-requests-word", ["pipeline", "run", "--local", "scheduled", "-p",
                                            "max_requests=abc"], "max_requests must be a whole number"),
    case("pipeline-run-thresholds-scalar", ["pipeline", "run", "--local", "scheduled", "-p",
                                            "thresholds=NaN"], "must be a mapping"),
    case("pipeline-schedule-five-field-cron", ["pipeline", "schedule", "--host", "http://127.0.0.1:9",
                                               "--cron", "0 2 * * *", "--name", "n"], "six"),
    case("pipeline-schedule-concurrency-zero", ["pipeline", "schedule", "--host", "http://127.0.0.1:9",
                                                "--cron", "0 0 2 * * *", "--name", "n", "--max-concurrency",
                                                "0"], "at least 1"),
    case("pipeline-schedule-no-host", ["pipeline", "schedule", "--cron", "0 0 2 * * *", "--name", "n"],
         "required: --host"),
    case("demo-epochs-zero", ["demo", "--epochs", "0"], "at least 1"),
    case("demo-subjects-zero", ["demo", "--subjects", "0"], "at least 1"),
    case("demo-forget-class-negative", ["demo", "--forget-class", "-1"], "at least 0"),
    case("demo-home-is-a-file", ["demo", "--home", "{plain}"], "is an existing file"),
    case("demo-lethe-home-is-a-file", ["demo"], "is not a directory", {"LETHE_HOME": "{plain}"}),
    # --- issue 27: found by the attack campaign and the generated suite ----------------------------------
    case("train-out-empty", [*TRAIN, "--out", ""], "--out is empty"),
    case("unlearn-out-empty", [*UNLEARN_CLASS, "--out", ""], "--out is empty"),
    case("unlearn-out-blank", [*UNLEARN_CLASS, "--out", "  "], "--out is empty"),
    case("evaluate-out-empty", [*EVAL_CLASS, "--out", ""], "--out is empty"),
    case("export-out-empty", ["request", "export", "--out", ""], "--out is empty"),
    case("compile-out-empty", ["pipeline", "compile", "--out", ""], "--out is empty"),
    case("unlearn-out-in-proc", [*UNLEARN_CLASS, "--out", "/proc/lethe-x"], "kernel filesystem"),
    case("train-out-in-proc", [*TRAIN, "--out", "/proc/lethe-x"], "kernel filesystem"),
    case("export-out-in-sys", ["request", "export", "--out", "/sys/lethe-x"], "kernel filesystem"),
    case("unlearn-out-inside-the-model", [*UNLEARN_CLASS, "--out", "{model}/child"], "inside the input"),
    case("evaluate-out-inside-the-model", [*EVAL_CLASS, "--out", "{model}/reports"], "inside the input"),
    case("evaluate-out-is-the-model", [*EVAL_CLASS, "--out", "{model}"], "is the input model"),
    case("unlearn-out-control-chars", [*UNLEARN_CLASS, "--out", "{home}/a\x1bb"], "control characters"),
    case("samples-empty", [*ADD, "--samples", ""], "empty sample id"),
    case("samples-blank", [*ADD, "--samples", " "], "empty sample id"),
    case("samples-tab", [*ADD, "--samples", "\t"], "empty sample id"),
    case("samples-one-of-two-empty", [*ADD, "--samples", "digits/train/1", ""], "empty sample id"),
    case("amend-samples-empty", ["request", "amend", "{pending_id}", "--samples", ""], "empty sample id"),
    case("ledger-in-memory", [*ADD, "--ledger", "sqlite://"], "in memory"),
    case("ledger-in-memory-named", [*ADD, "--ledger", "sqlite:///:memory:"], "in memory"),
    case("ledger-env-in-memory", ADD, "in memory", {"LETHE_LEDGER_URL": "sqlite://"}),
    case("ledger-port-not-a-number", ["request", "list", "--ledger",
                                      "postgresql://lethe:S3cretPW@127.0.0.1:abc/lethe"], "port"),
    case("ledger-env-port-not-a-number", ["request", "list"], "port",
         {"LETHE_LEDGER_URL": "postgresql://lethe:S3cretPW@127.0.0.1:abc/lethe"}),
    case("tracking-port-not-a-number", ["review", "list"], "port",
         {"LETHE_TRACKING_URI": "http://127.0.0.1:abc"}),
    case("tracking-port-not-a-number-flag", ["review", "list", "--tracking-uri", "http://u:pw@127.0.0.1:abc"],
         "port"),
    case("add-tracking-uncreatable-leaves-the-ledger", ADD, "/proc/lethe-x",
         {"LETHE_TRACKING_URI": "sqlite:////proc/lethe-x/m.db", "LETHE_LEDGER_URL": "{ledger_url}"}),
    case("subject-with-nul", ["request", "add", "--subject", "s\x00s", "--defer-check"],
         "control characters"),
    case("subject-with-escape", ["request", "add", "--subject", "s\x1b[31m", "--defer-check"],
         "control characters"),
    case("tracking-no-host", ["review", "list", "--tracking-uri", "http://u:S3cretPW@?@127.0.0.1:abc"],
         "an '@' after the host"),
    # Found by `make fuzz` (2026-12-07): a quote and a '?' in the password (http.client's traceback
    # echoed it), a host that is no host name, a number after a line break (float("\n1") is 1.0).
    case("tracking-password-quote-question", ["review", "list", "--tracking-uri",
                                              "http://u:S3cretPW@'?@127.0.0.1:abc"], "an '@' after the host"),
    case("tracking-host-not-a-name", ["review", "list", "--tracking-uri", "http://'x':1"],
         "is not a host name"),
    case("ledger-host-not-a-name", ["request", "list", "--ledger", "postgresql://lethe:S3cretPW@'x'/lethe"],
         "is not a host name"),
    case("pipeline-run-lam-after-a-line-break", ["pipeline", "run", "--local", "scheduled", "-p", "lam=\n1"],
         "lam must not hold control characters"),
    case("compile-unknown-pipeline-writes-nothing", ["pipeline", "compile", "--out", "{new}", "scheduled",
                                                     "bogus"], "bogus"),
]

#: Files a refused command may create: an empty store made on first use is not a change.
STORE_SUFFIXES = (".db", ".db-journal", ".db-wal", ".db-shm")


def _fill(text: str, paths: dict[str, str]) -> str:
    return text.format(**paths) if "{" in text else text


@pytest.mark.parametrize(("argv", "env", "fragment"), CASES)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(attack_home: AttackHome, argv: list[str],
                                                          env: dict[str, str | None], fragment: str) -> None:
    paths = attack_home.paths
    argv = [_fill(arg, paths) for arg in argv]
    environment = {**attack_home.env, **{k: None if v is None else _fill(v, paths) for k, v in env.items()}}
    out_dir = Path(paths["new"])
    before = home_snapshot(attack_home.root)

    result = run_in_process(argv, environment)

    assert "Traceback" not in result.err, result.err
    assert result.code == 2, (result.code, result.err)
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lethe: error: "), result.err
    assert _fill(fragment, paths) in lines[0], lines[0]
    assert not out_dir.exists(), "a refused command created its --out"
    after = home_snapshot(attack_home.root)
    changed = [name for name, stamp in before.items() if after.get(name) != stamp]
    created = [name for name in after if name not in before and not name.endswith(STORE_SUFFIXES)]
    assert not changed and not created, (changed, created)


def test_the_table_is_large_and_covers_every_command() -> None:
    assert len(CASES) >= 150
    commands = {params.values[0][0] for params in CASES if params.values[0]}
    assert commands >= {"request", "review", "model", "train", "unlearn", "evaluate", "data", "pipeline",
                        "demo"}


# --- real processes: the console script, pipes, the environment and argv bytes as a shell passes them --

LETHE = str(Path(sys.executable).parent / "lethe")
INVALID_UTF8_BYTES = b"subject-\xff\xfe"

SUBPROCESS_CASES = [
    case("script-usage-error", [LETHE, "request", "add"], "required: --subject"),
    case("script-deadline-overflow", [LETHE, *ADD, "--deadline-days",
                                      "99999999999"], "deadline must be 1 to 3650 days"),
    case("script-received-underflow", [LETHE, *ADD, "--received",
                                       "0001-01-01T00:00:00+14:00"], "out of range in UTC"),
    case("script-subject-bytes", [LETHE, "request", "add", "--subject", INVALID_UTF8_BYTES],
         "--subject: not valid UTF-8"),
    case("script-reason-bytes", [LETHE, "request", "retry", "{pending_id}", "--reason", INVALID_UTF8_BYTES],
         "--reason: not valid UTF-8"),
    case("script-home-is-a-file-add", [LETHE, "request", "add", "--subject", "x"], "is not a directory",
         {"LETHE_HOME": "{plain}"}),
    case("script-home-is-a-file-list", [LETHE, "request", "list"], "is not a directory",
         {"LETHE_HOME": "{plain}"}),
    case("script-home-is-a-file-review", [LETHE, "review", "list"], "is not a directory",
         {"LETHE_HOME": "{plain}"}),
    case("script-home-is-a-file-pipeline", [LETHE, "pipeline", "run", "--local"], "is not a directory",
         {"LETHE_HOME": "{plain}"}),
    case("script-home-bytes", [LETHE, "review", "list"], "LETHE_HOME is not valid UTF-8",
         {"LETHE_HOME": b"/tmp/lethe-\xff"}),
    case("script-ledger-env-unreadable", [LETHE, "request", "list"], "no erasure ledger at /proc/no",
         {"LETHE_LEDGER_URL": "sqlite:////proc/no/ledger.db"}),
    case("script-tracking-env-not-a-database", [LETHE, "review", "list"], "not a database",
         {"LETHE_TRACKING_URI": "sqlite:///{plain}"}),
    case("script-local-tasks-env-unknown", [LETHE, "pipeline", "run", "--local", "scheduled"],
         "LETHE_LOCAL_TASKS must be one of warm, subprocess, not 'hot'", {"LETHE_LOCAL_TASKS": "hot"}),
    case("script-train-lr-nan", [LETHE, *TRAIN, "--out", "{new}", "--lr", "nan"], "positive, finite"),
    case("script-unlearn-lam-inf", [LETHE, *UNLEARN_CLASS, "--out", "{new}", "--lam", "inf"],
         "positive, finite"),
    case("script-unlearn-device-tpu", [LETHE, *UNLEARN_CLASS, "--out", "{new}", "--device", "tpu"],
         "unknown device 'tpu'"),
    case("script-unlearn-out-is-the-model", [LETHE, *UNLEARN_CLASS, "--out", "{model}"],
         "is the input model directory"),
    case("script-register-bad-card", [LETHE, "model", "register", "{bad-classes}"], "num_classes"),
    case("module-entry-point", [sys.executable, "-m", "lethe.cli", "request", "show", "nope"],
         "no erasure request"),
]


def _process_env(attack_home: AttackHome, overrides: dict[str, str | bytes | None]) -> dict[bytes, bytes]:
    env = {os.fsencode(k): os.fsencode(v) for k, v in os.environ.items()}
    for name, value in {**attack_home.env, **overrides}.items():
        if value is None:
            env.pop(os.fsencode(name), None)
        else:
            env[os.fsencode(name)] = value if isinstance(value, bytes) else os.fsencode(
                _fill(value, attack_home.paths))
    return env


@pytest.mark.parametrize(("argv", "env", "fragment"), SUBPROCESS_CASES)
def test_bad_input_to_a_real_process(attack_home: AttackHome, argv: list[str | bytes],
                                     env: dict[str, str | bytes | None], fragment: str) -> None:
    paths = attack_home.paths
    command = [arg if isinstance(arg, bytes) else _fill(arg, paths) for arg in argv]
    before = home_snapshot(attack_home.root)
    done = subprocess.run(command, env=_process_env(attack_home, env), capture_output=True, timeout=300)
    err = done.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    assert done.returncode == 2, (done.returncode, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lethe: error: "), err
    assert _fill(fragment, paths) in lines[0], err
    assert not Path(paths["new"]).exists()
    assert home_snapshot(attack_home.root) == before


@pytest.mark.parametrize("argv", [["request", "list", "--json"], ["request", "list"],
                                  ["request", "show", "--json", "{pending_id}"]],
                         ids=["list-json", "list-table", "show-json"])
def test_output_into_a_closed_pipe_is_one_line_not_a_traceback(attack_home: AttackHome,
                                                               argv: list[str]) -> None:
    """`lethe request list --json | head -1` once ended in BrokenPipeError; the reader here is gone
    before anything is written, so the pipe breaks on every run, not only on long outputs."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([LETHE, *(_fill(a, attack_home.paths) for a in argv)], stdout=write_end,
                              stderr=subprocess.PIPE, env=_process_env(attack_home, {}), timeout=300)
    finally:
        os.close(write_end)
    err = done.stderr.decode(errors="replace")
    assert done.returncode == 2, (done.returncode, err)
    assert err.splitlines() == ["lethe: error: the output was cut off: its reader closed the pipe"], err


def test_a_refusal_on_a_fresh_home_is_one_line_without_mlflow_chatter(attack_home: AttackHome,
                                                                      tmp_path: Path) -> None:
    """MLflow logs its schema migrations on stderr when it creates a store: not around lethe's one line."""
    env = _process_env(attack_home, {"LETHE_HOME": str(tmp_path / "fresh")})
    done = subprocess.run([LETHE, "review", "approve", "99", "--by", "Dana", "--reason", "ok"], env=env,
                          capture_output=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == ["lethe: error: no version 99 of model lethe-classifier"]
