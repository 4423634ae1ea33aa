"""`lethe unlearn` / `lethe evaluate` end to end on digits, with the shared trained convnet."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lethe.cli import main
from lethe.data import load_dataset, resolve_forget_set
from lethe.errors import ConfigError, DataError, EvaluationError, ModelError
from lethe.models import build_model, load_model, save_model
from lethe.steps.evaluate import evaluate
from lethe.steps.forget_set import load_forget_set
from lethe.steps.unlearn import FULL_IMPORTANCES_FILE, make_target, unlearn
from lethe.unlearning import Importances, dampen

#: A digit this convnet forgets at a small cost (measured: α≈16, test accuracy −0.6 points).
CHEAP_CLASS = 5


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module", autouse=True)
def own_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`lethe unlearn` reads and fills the importances cache under LETHE_ARTIFACTS: one per module,
    so that the first CLI run here computes (and a checkout's own .lethe is never touched)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("LETHE_ARTIFACTS", "LETHE_DATASET_URI", "LETHE_STORE_ONLY", "LETHE_SUBJECT_MAP"):
            patch.delenv(name, raising=False)
        patch.setenv("LETHE_HOME", str(tmp_path_factory.mktemp("unlearn-home")))
        yield


@pytest.fixture(scope="module")
def class_run(digits_convnet_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`lethe unlearn --forget-class 5` then `lethe evaluate` on the result, through the CLI."""
    root = tmp_path_factory.mktemp("class-run")
    candidate, evidence = root / "candidate", root / "evidence"
    torch.set_num_threads(1)
    assert main(["unlearn", "--model", str(digits_convnet_dir), "--dataset", "digits", "--forget-class",
                 str(CHEAP_CLASS), "--out", str(candidate), "--no-progress"]) == 0
    assert main(["evaluate", "--model", str(candidate), "--parent", str(digits_convnet_dir), "--dataset",
                 "digits", "--forget-class", str(CHEAP_CLASS), "--scenario", "class", "--out", str(evidence),
                 "--no-progress"]) == 0
    return {"parent": digits_convnet_dir, "candidate": candidate, "evidence": evidence}


def test_class_forgetting_forgets_and_passes_the_default_gate(class_run: dict[str, Path]) -> None:
    metrics = json.loads((class_run["evidence"] / "metrics.json").read_text())
    candidate, parent = metrics["candidate"], metrics["parent"]
    assert parent["forget_accuracy"] > 0.9  # there was something to forget
    assert candidate["forget_accuracy"] <= 0.05
    assert candidate["forgotten_class_test_accuracy"] <= 0.1  # unseen samples of the class too
    assert metrics["gate"] == {**metrics["gate"], "decision": "pass", "reasons": []}
    for role in (candidate, parent):
        assert {"retain_accuracy", "forget_accuracy", "test_accuracy", "mia"} <= set(role)
        assert {"reference_member_rate", "holdout_member_rate", "gap", "gap_ci"} <= set(role["mia"])
        assert all(0.0 <= role[k] <= 1.0 for k in ("retain_accuracy", "forget_accuracy", "test_accuracy"))
    # The reference attack stops calling the forgotten class "member".
    assert candidate["mia"]["reference_member_rate"] < parent["mia"]["reference_member_rate"]


def test_unlearn_writes_a_loadable_model_and_its_dampening_record(class_run: dict[str, Path]) -> None:
    model, card = load_model(class_run["candidate"])
    record = json.loads((class_run["candidate"] / "dampening.json").read_text())
    assert card.fingerprint == record["candidate_fingerprint"] != record["parent_fingerprint"]
    assert card.extra["parent_fingerprint"] == record["parent_fingerprint"]
    # The parent is a trained root: its fingerprint is the root every descendant finds its recipe and
    # reference models by (lethe.audit).
    assert card.extra["root_fingerprint"] == record["parent_fingerprint"]
    assert record["alpha_method"] == "search" and record["lam"] == 1.0 and record["target_met"]
    # The product default, recorded from the importances it ran with.
    assert record["method"] == card.extra["unlearning"]["method"] == "lfssd"
    assert record["importances"]["method"] == record["forget_importances"]["method"] == "lfssd"
    assert record["forget_size"] == int((load_dataset("digits", "train").labels == CHEAP_CLASS).sum())
    assert 0 < record["total_selected"] == sum(record["selected"].values())
    imp = record["importances"]
    assert imp["computed"] and (class_run["candidate"] / FULL_IMPORTANCES_FILE).is_file()
    assert len(imp["sha256"]) == 64 and imp["batch_size"] == record["forget_importances"]["batch_size"]


def test_search_returns_the_largest_alpha_that_meets_the_target(class_run: dict[str, Path],
                                                                digits_convnet, digits_test) -> None:
    record = json.loads((class_run["candidate"] / "dampening.json").read_text())
    alpha = record["alpha"]
    # Among the trials at the chosen cut-off, α is the largest that met the target.
    trials = [t for t in record["selection"]["trials"] if t["cutoff"] == record["cutoff"]]
    assert trials and record["selection"]["found"] and record["selection"]["cutoff"] == record["cutoff"]
    assert all(t["alpha"] <= alpha for t in trials if t["met"])
    assert all(t["alpha"] > alpha for t in trials if not t["met"])
    # Re-check independently: the same target at α meets, at 1.05·α it does not.
    model, card = digits_convnet
    request = load_forget_set("digits", card, forget_class=CHEAP_CLASS)
    target = make_target(model, request, device="cpu")
    full = Importances.load(class_run["candidate"] / FULL_IMPORTANCES_FILE)
    from lethe.unlearning import compute_importances

    forget = compute_importances(model, request.split.forget.batches(full.batch_size, with_labels=False),
                                 progress=False)
    at, above = copy.deepcopy(model), copy.deepcopy(model)
    where = record["dampened_parameters"]
    dampen(at, full, forget, alpha=alpha, parameters=where)
    dampen(above, full, forget, alpha=1.05 * alpha, parameters=where)
    assert target(at) and not target(above)
    assert target.measurements[0].value <= 0.05 < target.measurements[1].value


def test_the_evidence_files_hold_real_content(class_run: dict[str, Path]) -> None:
    from matplotlib.image import imread

    evidence = class_run["evidence"]
    html = (evidence / "report.html").read_text()
    assert len(html) > 10_000 and "candidate: Accuracy" in html and "parent: Accuracy" in html
    assert "Forget samples" in html and "Held-out test samples" in html
    report = json.loads((evidence / "report.json").read_text())
    values = {(m["section"], m["metric_name"]): m["value"] for m in report["metrics"]}
    metrics = json.loads((evidence / "metrics.json").read_text())
    rows = metrics["evidence"]["report_rows"]
    # Every sample, one section per subset; Evidently's accuracies are the gate's, model by model.
    n = metrics["num_samples"]
    assert rows == {"forget": n["forget"], "retain": n["retain"], "test": n["test"],
                    "forgotten_class_test": n["forgotten_class_test"]}
    for role in ("parent", "candidate"):
        for section in ("forget", "retain", "test", "forgotten_class_test"):
            assert values[(section, f"Accuracy(classification_name={role})")] == pytest.approx(
                metrics[role][f"{section}_accuracy"], abs=1e-12)
    # Its tests are the gate's checks, and they agree with the gate.
    statuses = {t["check"]: t["status"] == "SUCCESS" for t in report["tests"]}
    assert statuses == {c["name"]: c["passed"] for c in metrics["gate"]["checks"]}
    for name in ("entropy.png", "dampening.png", "gate.png"):
        image = imread(evidence / name)
        assert image.ndim == 3 and image.shape[0] > 100 and float(image[..., :3].std()) > 0.01


def test_a_candidate_is_judged_against_its_own_parent_only(class_run: dict[str, Path],
                                                           tmp_path: Path) -> None:
    other = build_model("convnet", num_classes=10, in_channels=1, width=16)  # another lineage
    save_model(other, tmp_path / "other", {"dataset": "digits"})
    with pytest.raises(EvaluationError, match="made from model .* not from the parent given"):
        evaluate(class_run["candidate"], tmp_path / "other", "digits", forget_class=CHEAP_CLASS,
                 scenario="class", out_dir=tmp_path / "z", progress=False)
    assert not (tmp_path / "z").exists()


@pytest.mark.slow
def test_a_destroyed_model_fails_the_gate_for_the_right_reasons(digits_convnet, digits_convnet_dir: Path,
                                                                tmp_path: Path) -> None:
    model, card = digits_convnet
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    save_model(model, tmp_path / "zeroed", {"dataset": "digits", "normalization": card.normalization})
    result = evaluate(tmp_path / "zeroed", digits_convnet_dir, "digits", forget_class=CHEAP_CLASS,
                      scenario="class", out_dir=tmp_path / "evidence", progress=False)
    gate = result.gate
    assert gate["decision"] == "review" == result.decision and result.scalars["gate_pass"] == 0.0
    failed = {c["name"] for c in gate["checks"] if not c["passed"]}
    assert failed == {"test_accuracy_drop", "retain_accuracy_drop"}  # all-zero logits: forget acc is 0
    assert any(r.startswith("test accuracy dropped by") for r in gate["reasons"])
    assert (tmp_path / "evidence" / "report.html").is_file()


def test_subject_request_with_ids_from_a_file(digits_convnet_dir: Path, digits_train, tmp_path: Path) -> None:
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("# forget these\n" + "\n".join(digits_train.ids[:30:3]) + "\n\n")
    out = tmp_path / "candidate"
    assert main(["unlearn", "--model", str(digits_convnet_dir), "--dataset", "digits", "--forget-ids",
                 f"@{ids_file}", "--alpha", "assd", "--out", str(out), "--no-progress"]) == 0
    record = json.loads((out / "dampening.json").read_text())
    assert record["scenario"] == "subject" and record["forget_size"] == 10
    assert record["alpha_method"] == "assd" and record["alpha"] == record["alpha_assd"] > 0
    assert record["target"]["criterion"] == "member_rate_gap" and record["selection"] is None


def test_given_importances_are_reused_and_checked(class_run: dict[str, Path], digits_convnet_dir: Path,
                                                  tmp_path: Path) -> None:
    given = class_run["candidate"] / FULL_IMPORTANCES_FILE
    result = unlearn(digits_convnet_dir, "digits", forget_class=CHEAP_CLASS, alpha=50, importances=given,
                     out_dir=tmp_path / "c", progress=False)
    assert result.alpha_method == "given" and result.alpha == 50 == result.dampening["alpha"]
    assert not result.importances["computed"] and not (tmp_path / "c" / FULL_IMPORTANCES_FILE).exists()
    from lethe.errors import ImportancesError

    with pytest.raises(ImportancesError, match="batch size"):
        unlearn(digits_convnet_dir, "digits", forget_class=CHEAP_CLASS, alpha=50, importances=given,
                batch_size=7, out_dir=tmp_path / "d", progress=False)
    assert not (tmp_path / "d").exists()


def test_ssd_through_the_cli_end_to_end(digits_convnet_dir: Path, digits_train, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(digits_train.ids[1:40:4]) + "\n")
    base = ["unlearn", "--model", str(digits_convnet_dir), "--dataset", "digits",
            "--forget-ids", f"@{ids_file}", "--alpha", "assd", "--no-progress"]
    out = tmp_path / "ssd"
    assert main([*base, "--method", "ssd", "--out", str(out)]) == 0
    assert "with SSD" in capsys.readouterr().out
    record = json.loads((out / "dampening.json").read_text())
    assert record["method"] == record["importances"]["method"] == "ssd"
    assert record["forget_importances"]["method"] == "ssd"
    assert record["total_selected"] > 0 and record["forget_size"] == 10
    _, card = load_model(out)
    assert card.extra["unlearning"]["method"] == "ssd"
    full = Importances.load(out / FULL_IMPORTANCES_FILE)
    assert full.method == "ssd" and full.num_samples == len(digits_train) and full.batch_size == 1

    # Given importances bring their method; naming another one is refused in one line, changing nothing.
    again = unlearn(digits_convnet_dir, "digits", forget_ids=digits_train.ids[1:40:4], alpha=50,
                    importances=out / FULL_IMPORTANCES_FILE, out_dir=tmp_path / "again", progress=False)
    assert again.method == "ssd" == again.dampening["forget_importances"]["method"]
    refused = tmp_path / "refused"
    assert main([*base, "--importances", str(out / FULL_IMPORTANCES_FILE), "--method", "lfssd",
                 "--out", str(refused)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "importances are ssd ones, not lfssd" in err and not refused.exists()
    assert main([*base, "--method", "fisher", "--out", str(refused)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown importance method 'fisher'; expected one of lfssd, ssd" in err
    assert not refused.exists()


def test_bad_input_is_refused_with_a_clear_error(digits_convnet_dir: Path, digits_train, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    assert main(["unlearn", "--model", str(digits_convnet_dir), "--dataset", "digits", "--forget-class",
                 "12", "--out", str(tmp_path / "x")]) == 2
    assert "class 12 outside 0..9" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # bad input changes nothing
    with pytest.raises(ConfigError, match="alpha"):
        unlearn(digits_convnet_dir, "digits", forget_class=1, alpha="lots", out_dir=tmp_path / "y")
    with pytest.raises(DataError):
        unlearn(digits_convnet_dir, "digits", forget_ids=["digits/train/99999"], out_dir=tmp_path / "y")
    assert main(["evaluate", "--model", str(digits_convnet_dir), "--parent", str(digits_convnet_dir),
                 "--dataset", "digits", "--forget-ids", "@/nonexistent/ids.txt", "--scenario", "subject",
                 "--out", str(tmp_path / "z")]) == 2
    assert "cannot read sample ids" in capsys.readouterr().err

    five = build_model("convnet", num_classes=5, in_channels=1, width=16)
    save_model(five, tmp_path / "five", {"dataset": "digits"})
    with pytest.raises(ModelError, match="5 classes but data set digits has 10"):
        evaluate(tmp_path / "five", digits_convnet_dir, "digits", forget_class=1, scenario="class",
                 out_dir=tmp_path / "z")

    model, card = load_model(digits_convnet_dir)
    with torch.no_grad():
        model.classifier[-1].bias[0] = float("nan")
    save_model(model, tmp_path / "nan", {"dataset": "digits"})
    # A model holding NaN is refused when loaded, before any forward pass (integrity, issue 16).
    with pytest.raises(ModelError, match="holds NaN or infinite values"):
        evaluate(tmp_path / "nan", digits_convnet_dir, "digits", forget_class=1, scenario="class",
                 out_dir=tmp_path / "z", progress=False)
    assert not (tmp_path / "z").exists()


def test_load_forget_set_infers_the_scenario(digits_convnet) -> None:
    _, card = digits_convnet
    assert load_forget_set("digits", card, forget_class=2).scenario == "class"
    assert load_forget_set("digits", card, forget_ids=["digits/train/0"]).scenario == "subject"
    split = resolve_forget_set(load_forget_set("digits", card, forget_class=2).train, forget_class=2)
    assert len(split.forget) > 100

