"""The membership test of a person (per-sample evidence as detail), the gate's outcomes and one story for
the reviewer.

Planted memorised subjects on digits: a small MLP trained long without weight decay on the digits
training split in which one subject's 10 samples carry a wrong label and another subject's 10 samples
carry a stamped pattern of their own but keep their true class (the parent memorises both: models that
never saw them do not), and K=4 reference models on halves drawn by subject (each person out of 2;
every other sample belongs to a synthetic subject of 10). The fixture trains 6 such models in about
2 s of CPU.
"""

from __future__ import annotations

import copy
import json
import math
import time

import pytest
import torch
from torch import nn

from lethe.audit import ReferenceSet, membership_design, subject_groups
from lethe.data import synthetic_subjects
from lethe.data.planted import STAMPED_TRUE_CLASS, WRONG_LABEL, plant_subjects
from lethe.evaluation import Check, decide, evaluate_candidate, evidently_disagreements, load_thresholds
from lethe.evaluation.per_example import (
    Share,
    calibrate_threshold,
    flagged_share,
    lira_scores,
    logit_confidence,
    outcome_of,
    per_example_evidence,
    pooled_variance,
    wilson_interval,
)
from lethe.ledger.certificates import membership_evidence, own_gate
from lethe.steps.evaluate import membership_scalars

K = 4
PLANTED = 10
ORDINARY = 150


def _inputs(samples) -> torch.Tensor:
    return samples.normalization.apply(samples.inputs)


def _fit(x: torch.Tensor, y: torch.Tensor, seed: int, steps: int = 150) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)  # no weight decay: it memorises
    with torch.enable_grad():
        for _ in range(steps):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def planted(digits_train, digits_test) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # A wrong-label subject and a stamped subject of its true class, planted as the benchmark plants
        # them; every other sample belongs to a synthetic subject of 10.
        planting = plant_subjects(digits_train, wrong_label=1, stamped_true_class=1, per_subject=PLANTED,
                                  seed=0)
        train, labels = planting.train, planting.train.labels
        memorised = train.indices_of(planting.ids_of_kind(WRONG_LABEL))
        stamped = train.indices_of(planting.ids_of_kind(STAMPED_TRUE_CLASS))
        taken = {i for ids in planting.subjects.values() for i in ids}
        mapping = {**planting.subjects, **synthetic_subjects([i for i in train.ids if i not in taken])}
        groups = subject_groups(train.ids, mapping)
        x = _inputs(train)
        parent = _fit(x, labels, seed=0)
        # Halves by subject, as lethe.audit draws them: each person in 2 of the 4 models.
        membership = membership_design(K, len(train), seed=1, groups=groups)
        references = [_fit(x[membership[k]], labels[membership[k]], seed=k + 1) for k in range(K)]
        keep = torch.ones(len(labels), dtype=torch.bool)
        keep[memorised] = keep[stamped] = False
        retrained = _fit(x[keep], labels[keep], seed=99)
        with torch.no_grad():
            train_logits = torch.stack([r(x) for r in references])
            test_logits = torch.stack([r(_inputs(digits_test)) for r in references])
        reference_set = ReferenceSet(
            k=K, train_ids=list(train.ids), membership=membership, train_logits=train_logits,
            test_logits=test_logits, model_fingerprint="0" * 64, dataset_fingerprint=train.fingerprint(),
            recipe={}, uri="", test_ids=list(digits_test.ids), groups=groups, train_labels=labels,
            test_labels=digits_test.labels)
        # A subject the parent never memorised: the synthetic subject whose images the models that never
        # saw them recognise most confidently (chosen from the references alone, never the parent's).
        out = ~membership
        phi = logit_confidence(train_logits, labels)
        typicality = torch.where(out, phi, 0.0).sum(dim=0) / out.sum(dim=0).clamp(min=1)
        subjects = [g for g in range(int(groups.max()) + 1) if not taken & set(_ids(train, groups, g))]
        ordinary = max(subjects, key=lambda g: float(typicality[groups == g].mean()))
    finally:
        torch.set_num_threads(threads)
    return {"train": train, "parent": parent, "retrained": retrained, "references": reference_set,
            "memorised": memorised, "stamped": stamped, "ordinary": (groups == ordinary).nonzero().flatten(),
            "typical": typicality.argsort(descending=True)[:ORDINARY]}


def _ids(train, groups: torch.Tensor, group: int) -> list[str]:
    return [train.ids[i] for i in (groups == group).nonzero().flatten().tolist()]


def _touched(model: nn.Module) -> nn.Module:
    """The model with one bias nudged: parameters changed, predictions not (the gate refuses identity)."""
    touched = copy.deepcopy(model)
    with torch.no_grad():
        touched[-1].bias.mul_(1.0001)
    return touched


def _evaluate(planted: dict, digits_test, rows: torch.Tensor, candidate: nn.Module, out_dir, *,
              requests=None, with_references: bool = True) -> dict:
    train = planted["train"]
    forget = train.subset(rows)
    keep = torch.ones(len(train), dtype=torch.bool)
    keep[rows] = False
    references = planted["references"].outputs(rows) if with_references else None
    return evaluate_candidate(candidate, planted["parent"], retain=train.subset(keep.nonzero().flatten()),
                              forget=forget, test=digits_test, scenario="subject", out_dir=out_dir,
                              device="cpu", progress=False, references=references, requests=requests)


# --- the statistics ------------------------------------------------------------------------------


def test_logit_confidence_is_log_odds_of_the_label_and_stable() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0]])
    p = torch.softmax(logits.double(), dim=1)[torch.arange(2), torch.tensor([0, 2])]
    assert torch.allclose(logit_confidence(logits, torch.tensor([0, 2])), torch.log(p / (1 - p)))
    # A memorised sample: p_y rounds to 1 in float32; φ stays finite and exact (z_y − z_other).
    assert logit_confidence(torch.tensor([[60.0, 0.0]]), torch.tensor([0])).item() == pytest.approx(60.0)


def test_lira_scores_pool_the_variance_and_skip_samples_never_out() -> None:
    reference = torch.tensor([[[1.0, 0.0]], [[3.0, 0.0]], [[2.0, 0.0]]]).repeat(1, 2, 1)  # [K=3, n=2, C=2]
    out = torch.tensor([[True, False], [True, False], [False, False]])
    labels = torch.tensor([0, 0])
    variance = pooled_variance(logit_confidence(reference, labels), out)
    assert variance == pytest.approx(2.0)  # (1 − 2)² + (3 − 2)² over one degree of freedom
    target = torch.tensor([[2.0 + 2.0, 0.0], [9.0, 0.0]])
    scores = lira_scores(target, labels, reference, out)
    assert scores[0].item() == pytest.approx(2.0 / math.sqrt(2.0 * 1.5))  # predictive spread, n_out = 2
    assert math.isnan(scores[1].item())  # no model left it out: no evidence either way


def test_calibration_and_shares() -> None:
    scores = torch.arange(1000, dtype=torch.float64)
    threshold = calibrate_threshold(scores, 0.05)
    assert float((scores > threshold).double().mean()) == pytest.approx(0.05, abs=0.002)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-3)  # a bootstrap would say [0, 0]
    share = flagged_share(torch.tensor([0.0, 5.0, float("nan"), 6.0]), 1.0)
    assert (share.flagged, share.n) == (2, 3)


def test_the_outcome_of_each_case() -> None:
    non_member = Share(9, 180, 0.05, 0.026, 0.093)

    def share(k: int, n: int) -> Share:
        return Share(k, n, k / n, *wilson_interval(k, n))

    assert outcome_of(share(10, 10), share(9, 10), non_member, non_member) == "still_flagged"
    assert outcome_of(share(10, 10), share(0, 10), non_member, non_member) == "removed"
    assert outcome_of(share(2, 200), share(2, 200), non_member, non_member) == "not_memorised"
    assert outcome_of(share(1, 10), share(1, 10), non_member, non_member) == "inconclusive"


# --- the gate's three outcomes on a planted memorised subject -------------------------------------


def test_a_planted_wrong_label_subject_is_memorised_and_flagged(planted, digits_test) -> None:
    """The many-step, no-weight-decay parent memorises the planted wrong labels (in confidence; its
    argmax mostly stays the true class), a model that never saw them does not, and the test of the
    person flags them on the parent only (the per-sample shares say the same, as detail)."""
    rows = planted["memorised"]
    with torch.no_grad():
        x, test_x = _inputs(planted["train"])[rows], _inputs(digits_test)
        parent = {"forget": planted["parent"](x), "test": planted["parent"](test_x)}
        retrained = {"forget": planted["retrained"](x), "test": planted["retrained"](test_x)}
    labels = {"forget": planted["train"].labels[rows], "test": digits_test.labels}
    # The parent's confidence in the wrong labels is far above that of a model that never saw them.
    gap = logit_confidence(parent["forget"], labels["forget"]) - logit_confidence(retrained["forget"],
                                                                                  labels["forget"])
    assert float(gap.median()) > 2.0
    result = per_example_evidence(parent, retrained, labels, planted["references"].outputs(rows)).evidence
    evidence = result["requests"]["all"]
    at = evidence["fpr"]["0.01"]
    assert at["parent"]["share"] >= 0.5 and at["parent_non_member"]["share"] <= 0.05
    assert at["candidate"]["share"] <= 0.2
    assert evidence["outcome"] == "removed"
    person = evidence["person"]
    assert at["person"]["parent"] and not at["person"]["candidate"]  # flagged at 1% FPR over persons
    assert person["p_value"]["parent"] <= 0.01 < person["p_value"]["candidate"]
    assert person["subjects"] == 1 and result["unit"] == "person" and result["refused"] is None
    assert result["person"]["null"]["persons"] > 100 and 0 <= result["person"]["null"]["correlation"] < 1


@pytest.mark.slow  # a whole evaluation with its report and plots (8 s)
def test_the_gate_refuses_a_candidate_that_still_flags_a_memorised_subject(planted, digits_test,
                                                                           tmp_path) -> None:
    metrics = _evaluate(planted, digits_test, planted["memorised"], _touched(planted["parent"]), tmp_path,
                        requests={"req-memorised": list(range(PLANTED))})
    request = metrics["per_example"]["requests"]["req-memorised"]
    assert request["outcome"] == "still_flagged"
    gate = metrics["gate"]
    assert gate["decision"] == "review" and gate["membership_test"] == "per-example"
    failed = [c["name"] for c in gate["checks"] if not c["passed"]]
    assert failed == ["per_example_still_flagged"]  # accuracies and parameters are fine: memorisation is not
    assert "request req-memorised: still flagged" in gate["reasons"][0]
    assert "lethe retrain" in gate["reasons"][0]
    # The evidence a reviewer reads: no Evidently test contradicts the gate, and one of them fails.
    report = json.loads((tmp_path / "report.json").read_text())
    checks = [Check(**c) for c in gate["checks"]]
    assert evidently_disagreements(report, checks) == []
    assert any(t["status"] == "FAIL" and t["check"] == "per_example_still_flagged" for t in report["tests"])
    assert {"forget", "retain", "test", "gate"} <= set(report["sections"])
    html = (tmp_path / "report.html").read_text()
    assert "candidate: Accuracy" in html and "parent: Accuracy" in html
    assert "per_example_still_flagged" in html
    assert {"per_example.png", "gate.png"} <= set(metrics["evidence"]["plots"])


def test_a_subject_never_memorised_passes_and_the_evidence_says_so(planted, digits_test, tmp_path) -> None:
    started = time.perf_counter()
    metrics = _evaluate(planted, digits_test, planted["ordinary"], _touched(planted["parent"]), tmp_path)
    request = metrics["per_example"]["requests"]["all"]
    assert request["outcome"] == "not_memorised", request["summary"]
    gate = metrics["gate"]
    assert gate["decision"] == "pass", gate["reasons"]
    assert any("not memorised before erasure" in note and "no evidence of a removal" in note
               for note in gate["notes"])
    # The population attack's forget-over-test check would have refused it: it no longer decides.
    assert "forget_accuracy_over_test" not in {c["name"] for c in gate["checks"]}
    report = json.loads((tmp_path / "report.json").read_text())
    assert evidently_disagreements(report, [Check(**c) for c in gate["checks"]]) == []
    assert all(t["status"] == "SUCCESS" for t in report["tests"]) and report["tests"]
    assert time.perf_counter() - started < 60


def test_a_candidate_that_forgot_the_memorised_subject_is_a_removal(planted, digits_test, tmp_path) -> None:
    metrics = _evaluate(planted, digits_test, planted["memorised"], planted["retrained"], tmp_path)
    request = metrics["per_example"]["requests"]["all"]
    assert request["outcome"] == "removed", request["summary"]
    assert request["summary"].startswith("removed: before erasure the parent scored this person at")
    scalars = membership_scalars(metrics)
    assert scalars["per_example_requests_removed"] == 1.0
    assert scalars["per_example_parent_share_fpr5"] > scalars["per_example_candidate_share_fpr5"]


def test_a_stamped_subject_of_its_true_class_is_found_on_the_original_and_cleared_when_retrained(
        planted, digits_test, tmp_path) -> None:
    """Nothing in the labels gives this person away (their images keep their class): only the shared
    pattern does. The gate refuses the original (its person is still flagged: through the evaluator) and
    passes the model retrained without the person (its per-example evidence and the gate)."""
    rows = planted["stamped"]
    requests = {"req-stamped": list(range(PLANTED))}
    original = _evaluate(planted, digits_test, rows, _touched(planted["parent"]), tmp_path / "original",
                         requests=requests)
    request = original["per_example"]["requests"]["req-stamped"]
    assert request["outcome"] == "still_flagged", request["summary"]
    assert original["gate"]["decision"] == "review"
    assert [c["name"] for c in original["gate"]["checks"] if not c["passed"]] == ["per_example_still_flagged"]
    # The retrained model: the same evidence and gate, without the report and plots around them.
    with torch.no_grad():
        x, test_x = _inputs(planted["train"])[rows], _inputs(digits_test)
        logits = {role: {"forget": model(x), "test": model(test_x)}
                  for role, model in (("parent", planted["parent"]), ("retrained", planted["retrained"]))}
    labels = {"forget": planted["train"].labels[rows], "test": digits_test.labels}
    evidence = per_example_evidence(logits["parent"], logits["retrained"], labels,
                                    planted["references"].outputs(rows),
                                    requests={"req-stamped": torch.arange(PLANTED)}).evidence
    request = evidence["requests"]["req-stamped"]
    assert request["outcome"] == "removed", request["summary"]
    accuracy = {"retain_accuracy": 1.0, "test_accuracy": 1.0, "forget_accuracy": 1.0, "mia": {"gap": 0.0}}
    gate = decide(accuracy, {**accuracy, "parameters_changed": True}, "subject", per_example=evidence)
    assert gate.decision == "pass", gate.reasons


def test_without_references_the_population_attack_decides_and_is_called_weak(planted, digits_test,
                                                                               tmp_path) -> None:
    metrics = _evaluate(planted, digits_test, planted["memorised"], _touched(planted["parent"]), tmp_path,
                        with_references=False)
    gate = metrics["gate"]
    assert gate["membership_test"] == "population" and metrics["per_example"] is None
    assert any("weak evidence" in note for note in gate["notes"])
    assert {"forget_accuracy_over_test", "member_rate_gap"} <= {c["name"] for c in gate["checks"]}


def test_the_test_of_a_100_sample_request_is_fast(planted, digits_test) -> None:
    """With the reference logits cached: the null of persons (once per reference set) and the test."""
    rows = planted["typical"][:100]
    with torch.no_grad():
        x, test_x = _inputs(planted["train"]), _inputs(digits_test)
        logits = {"forget": planted["parent"](x[rows]), "test": planted["parent"](test_x)}
    labels = {"forget": planted["train"].labels[rows], "test": digits_test.labels}
    fresh = copy.copy(planted["references"])  # no null computed yet
    fresh.__dict__.pop("person_null", None)
    started = time.perf_counter()
    evidence = per_example_evidence(logits, logits, labels, fresh.outputs(rows)).evidence
    assert time.perf_counter() - started < 5.0
    assert evidence["requests"]["all"]["num_samples"] == 100 and evidence["unit"] == "person"
    assert evidence["requests"]["all"]["person"]["subjects"] > 1  # typical samples of many persons


# --- the gate, the certificate and the trackers, on recorded evidence -----------------------------


def _evidence(outcome: str) -> dict:
    return {"requests": {"r1": {"outcome": outcome, "summary": f"{outcome.replace('_', ' ')}: words",
                                "fpr": {"0.05": {"outcome": outcome}}},
                         "r2": {"outcome": "removed", "summary": "removed: words", "fpr": {}}}}


def test_the_gate_reads_the_per_example_outcome() -> None:
    parent = {"retain_accuracy": 0.99, "test_accuracy": 0.95, "forget_accuracy": 1.0, "mia": {"gap": 0.3}}
    candidate = {**parent, "parameters_changed": True}
    refused = decide(parent, candidate, "subject", per_example=_evidence("still_flagged"))
    assert refused.decision == "review" and "request r1: still flagged" in refused.reasons[0]
    assert "approve this version with a reason" in refused.reasons[0]
    passed = decide(parent, candidate, "subject", per_example=_evidence("not_memorised"))
    assert passed.decision == "pass" and "request r1: not memorised: words" in passed.notes
    assert any("population attack's member-rate gap is 0.300" in n for n in passed.notes)
    weak = decide(parent, candidate, "subject", load_thresholds())
    assert weak.decision == "review" and weak.membership_test == "population"


def test_a_certificate_holds_its_own_request_outcome_only() -> None:
    parent = {"retain_accuracy": 0.99, "test_accuracy": 0.95, "forget_accuracy": 1.0, "mia": {"gap": 0.0}}
    gate = decide(parent, {**parent, "parameters_changed": True}, "subject",
                  per_example=_evidence("not_memorised")).to_dict()
    mine = membership_evidence(gate, "r1")
    assert mine["outcome"] == "not_memorised" and mine["evidence"].startswith("not memorised")
    assert mine["scope"] == "this request's samples"
    kept = own_gate(gate, "r1")
    assert "requests" not in kept and not any("r2" in note for note in kept["notes"])
    population = decide(parent, {**parent, "parameters_changed": True}, "subject").to_dict()
    assert "weak evidence" in membership_evidence(population, "r1")["evidence"]


@pytest.mark.slow
def test_the_evaluate_step_finds_the_version_references_and_judges_each_request(
        digits_convnet_dir, digits_train, digits_test, tmp_path) -> None:
    from lethe.audit import ReferenceSet, references_uri
    from lethe.audit.recipe import root_fingerprint
    from lethe.errors import AuditError
    from lethe.evaluation.forward import predict_logits
    from lethe.models import load_model
    from lethe.steps.evaluate import evaluate

    model, card = load_model(digits_convnet_dir)
    generator = torch.Generator().manual_seed(0)
    # Stand-in references (the wiring is under test, not the statistics): the model's logits, jittered.
    train_logits, test_logits = (predict_logits(model, s.batches(512, with_labels=False), progress=False)
                                 for s in (digits_train, digits_test))
    jitter = [torch.randn((K, *t.shape), generator=generator) for t in (train_logits, test_logits)]
    root = str(tmp_path / "audit")
    from lethe.data import subject_map

    groups = subject_groups(digits_train.ids, subject_map(digits_train))
    references = ReferenceSet(
        k=K, train_ids=list(digits_train.ids), membership=membership_design(K, len(groups), seed=0,
                                                                            groups=groups),
        train_logits=train_logits + jitter[0], test_logits=test_logits + jitter[1],
        model_fingerprint=root_fingerprint(card), dataset_fingerprint=digits_train.fingerprint(), recipe={},
        uri="", test_ids=list(digits_test.ids), groups=groups, train_labels=digits_train.labels,
        test_labels=digits_test.labels)
    references.save(references_uri(root_fingerprint(card), root))
    ids = list(digits_train.ids[:30])
    requests = {"req-a": ids[:10], "req-b": ids[10:]}
    result = evaluate(digits_convnet_dir, digits_convnet_dir, "digits", forget_ids=ids, scenario="subject",
                      out_dir=tmp_path / "evidence", progress=False, requests=requests, references_root=root)
    per_example = result.metrics["per_example"]
    assert set(per_example["requests"]) == {"req-a", "req-b"} and per_example["reference_models"] == K
    assert per_example["unit"] == "person" and all("person" in r for r in per_example["requests"].values())
    assert [per_example["requests"][r]["num_samples"] for r in ("req-a", "req-b")] == [10, 20]
    assert result.gate["membership_test"] == "per-example"
    assert set(result.gate["requests"]) == {"req-a", "req-b"}
    assert {"per_example_candidate_share_fpr1", "per_example_parent_ci_high_fpr5",
            "per_example_requests_still_flagged", "candidate_mia_gap_ci_low"} <= set(result.scalars)
    # Without reference models: the population attack, said to be weak.
    plain = evaluate(digits_convnet_dir, digits_convnet_dir, "digits", forget_ids=ids, scenario="subject",
                     out_dir=tmp_path / "plain", progress=False, references_root=str(tmp_path / "none"))
    assert plain.gate["membership_test"] == "population" and plain.metrics["per_example"] is None
    # References of other data are refused, not compared.
    from dataclasses import replace

    replace(references, dataset_fingerprint="0" * 64).save(references_uri(root_fingerprint(card), root))
    with pytest.raises(AuditError, match="prepare references for this data"):
        evaluate(digits_convnet_dir, digits_convnet_dir, "digits", forget_ids=ids, scenario="subject",
                 out_dir=tmp_path / "other", progress=False, references_root=root)
