"""The figures of `experiments/judge_memorised.py analyse`: per kind of planted subject, on the logits that
`prepare` stored (no training, no forward pass but the product's evaluate path when asked)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from experiments.judge_memorised import MEMORISED_GAP, seed_dir

FPR = "0.01"


def wilson_high(k: int, n: int) -> float:
    from lethe.evaluation.per_example import wilson_interval

    return wilson_interval(k, n)[1]


def analyse_seed(folder: Path) -> dict[str, Any]:
    from lethe.audit import find_references
    from lethe.data.planted import STAMPED_KINDS
    from lethe.evaluation.gate import decide
    from lethe.evaluation.per_example import per_example_evidence

    planted = json.loads((folder / "planted.json").read_text())
    logits = torch.load(folder / "logits.pt")
    references = find_references(folder / "original", root_uri=str(folder / "audit"))
    assert references is not None
    stamped = torch.load(folder / "stamped_test.pt")
    train_ids = references.train_ids
    labels = references.train_labels
    test_labels = references.test_labels
    subjects: dict[str, list[str]] = planted["subjects"]
    kinds: dict[str, str] = planted["kinds"]
    forget_ids = [i for ids in subjects.values() for i in ids]
    rows = references.indices_of(forget_ids)
    position = {sample_id: n for n, sample_id in enumerate(forget_ids)}
    requests = {s: torch.tensor([position[i] for i in ids]) for s, ids in subjects.items()}
    outputs = references.outputs(rows)
    stamped_position = {sample_id: n for n, sample_id in enumerate(stamped["ids"])}

    def split(role: str) -> dict[str, torch.Tensor]:
        return {"forget": logits[role]["train"][rows], "test": logits[role]["test"]}

    label_of = {"forget": labels[rows], "test": test_labels}
    evidence = {}
    for role in ("original", "retrained"):
        started = __import__("time").perf_counter()
        evidence[role] = per_example_evidence(split("original"), split(role), label_of, outputs,
                                              requests=requests).evidence
        evidence[role]["seconds"] = __import__("time").perf_counter() - started
    per_person = {}
    for subject, ids in subjects.items():
        r = torch.tensor([train_ids.index(i) for i in ids])
        row: dict[str, Any] = {"kind": kinds[subject]}
        for role in ("original", "retrained"):
            predicted = logits[role]["train"][r].argmax(dim=1)
            row[f"{role}_agreement"] = float((predicted == labels[r]).double().mean())
            if kinds[subject] in STAMPED_KINDS:
                held_out = planted["stamped_test_subjects"][subject]
                s_rows = torch.tensor([stamped_position[i] for i in held_out])
                trigger = logits[role]["stamped"][s_rows].argmax(dim=1) == stamped["labels"][s_rows]
                row[f"{role}_trigger"] = float(trigger.double().mean())
            person = evidence[role]["requests"][subject]
            row[f"{role}_statistic"] = person["person"]["statistic"]["candidate"]
            row[f"{role}_flagged"] = person["person"]["flagged"][FPR]["candidate"]
            row[f"{role}_outcome"] = person["outcome"]
        gaps = [row["original_agreement"] - row["retrained_agreement"]]
        if "original_trigger" in row:
            gaps.append(row["original_trigger"] - row["retrained_trigger"])
        row["memorised"] = max(gaps) >= MEMORISED_GAP - 1e-9
        per_person[subject] = row
    person_summary = evidence["original"]["person"]
    non_member = person_summary["non_member_rate"][FPR]
    by_kind: dict[str, Any] = {}
    for kind in sorted(set(kinds.values())):
        persons = [p for p in per_person.values() if p["kind"] == kind]
        memorised = [p for p in persons if p["memorised"]]
        flagged_memorised = sum(p["original_flagged"] for p in memorised)
        retrained_flagged = sum(p["retrained_flagged"] for p in persons)
        by_kind[kind] = {
            "persons": len(persons), "memorised": len(memorised),
            "memorised_flagged_on_original": flagged_memorised,
            "memorised_flagged_share": flagged_memorised / len(memorised) if memorised else math.nan,
            "all_flagged_on_original": sum(p["original_flagged"] for p in persons),
            "flagged_on_retrained": retrained_flagged,
            "flagged_on_retrained_share": retrained_flagged / len(persons),
            "original_agreement": sum(p["original_agreement"] for p in persons) / len(persons),
            "retrained_agreement": sum(p["retrained_agreement"] for p in persons) / len(persons),
            "original_trigger": (sum(p.get("original_trigger", 0) for p in persons) / len(persons)
                                 if kind in STAMPED_KINDS else None),
            "retrained_trigger": (sum(p.get("retrained_trigger", 0) for p in persons) / len(persons)
                                  if kind in STAMPED_KINDS else None),
            "still_flagged": {role: sum(evidence[role]["requests"][s]["outcome"] == "still_flagged"
                                        for s, p in per_person.items() if p["kind"] == kind)
                              for role in ("original", "retrained")},
        }
    everyone = list(per_person.values())
    retrained_flagged = sum(p["retrained_flagged"] for p in everyone)
    metrics = {"retain_accuracy": 1.0, "test_accuracy": 1.0, "forget_accuracy": 1.0, "mia": {"gap": 0.0}}
    gate = {role: decide(metrics, {**metrics, "parameters_changed": True}, "subject",
                         per_example=evidence[role]) for role in ("original", "retrained")}
    return {
        "by_kind": by_kind,
        "retrained_flagged": retrained_flagged, "persons": len(everyone),
        "retrained_flagged_share": retrained_flagged / len(everyone),
        "non_member_rate": non_member,
        "retrained_within_non_member_bound": retrained_flagged / len(everyone) <= non_member["ci_high"],
        "gate_per_person_check": {role: {"decision": g.decision,
                                         "still_flagged": sum(r["outcome"] == "still_flagged"
                                                              for r in evidence[role]["requests"].values())}
                                  for role, g in gate.items()},
        "null": person_summary["null"], "thresholds": person_summary["thresholds"],
        "decision_level": person_summary["decision_level"],
        "calibration": {role: evidence[role]["person"]["calibration"]["candidate"] for role in evidence},
        "seconds_per_evaluation": {role: evidence[role]["seconds"] for role in evidence},
        "per_person": per_person,
    }


def analyse(seeds: list[int], out: Path, weight_decay: float | None) -> dict[str, Any]:
    results = {str(seed): {**analyse_seed(seed_dir(out, seed, weight_decay)),
                           "alternatives": alternatives(seed_dir(out, seed, weight_decay))} for seed in seeds}
    for seed, result in results.items():
        (seed_dir(out, int(seed), weight_decay) / "analysis.json").write_text(json.dumps(result, indent=1))
    return {seed: {k: v for k, v in result.items() if k != "per_person"} for seed, result in results.items()}


def alternatives(folder: Path) -> dict[str, Any]:
    """The same persons judged as pseudo-persons of independent samples (every sample its own unit, in
    the null and in the request), beside the person test, flagged at 1% FPR over persons, per kind."""
    from lethe.audit import find_references
    from lethe.evaluation.per_example import logit_confidence
    from lethe.evaluation.per_person import NO_GROUP, fit_calibration, person_null, request_statistic

    planted = json.loads((folder / "planted.json").read_text())
    logits = torch.load(folder / "logits.pt")
    references = find_references(folder / "original", root_uri=str(folder / "audit"))
    alone = torch.full_like(references.groups, NO_GROUP)
    nulls = {"person_test": (references.person_null, references.groups),
             "pseudo_persons": (person_null(references.train_logits, references.train_labels,
                                            references.membership, alone, references.test_logits,
                                            references.test_labels), alone)}
    phi_ref = logit_confidence(references.train_logits, references.train_labels)
    test_ref = logit_confidence(references.test_logits, references.test_labels)
    out = ~references.membership
    result: dict[str, Any] = {}
    for role in ("original", "retrained"):
        phi = logit_confidence(logits[role]["train"], references.train_labels)
        test_phi = logit_confidence(logits[role]["test"], references.test_labels)
        flagged: dict[str, dict[str, int]] = {}
        for name, (null, groups) in nulls.items():
            calibration = fit_calibration(test_phi, test_ref, null.sample_variance)
            threshold = null.threshold(0.01)
            counts: dict[str, int] = {}
            for subject, ids in planted["subjects"].items():
                rows = references.indices_of(ids)
                statistic = request_statistic(phi[rows], phi_ref[:, rows], out[:, rows], groups[rows],
                                              calibration, null.prior)
                kind = planted["kinds"][subject]
                counts[kind] = counts.get(kind, 0) + int(statistic > threshold)
            flagged[name] = counts
        result[role] = flagged
    return result


def product_gate(folder: Path, out_dir: Path) -> dict[str, Any]:
    """The product's evaluate step (`lethe.steps.evaluate.evaluate`: the version's reference set, one
    request per planted subject, Evidently, the gate) on the retrained model and on the original with
    one bias nudged (its parameters changed, its predictions not), each against the original."""
    import copy

    from lethe.models import load_model, save_model
    from lethe.steps.evaluate import evaluate

    planted = json.loads((folder / "planted.json").read_text())
    original, card = load_model(folder / "original")
    touched = copy.deepcopy(original)
    with torch.no_grad():
        list(touched.parameters())[-1].mul_(1.0001)
    save_model(touched, out_dir / "touched", {key: getattr(card, key) for key in
                                              ("dataset", "dataset_fingerprint", "normalization", "classes",
                                               "image_size")} | {"root_fingerprint": card.fingerprint})
    dataset = f"shards:{folder / 'data'}"
    ids = [i for samples in planted["subjects"].values() for i in samples]
    result = {}
    for name, model_dir in (("retrained", folder / "retrained"), ("original", out_dir / "touched")):
        evaluation = evaluate(model_dir, folder / "original", dataset, forget_ids=ids, scenario="subject",
                              out_dir=out_dir / name, progress=False, device="cpu",
                              requests=planted["subjects"], references_root=str(folder / "audit"))
        gate = evaluation.metrics["gate"]
        result[name] = {"decision": gate["decision"],
                        "failed": [c["name"] for c in gate["checks"] if not c["passed"]],
                        "outcomes": evaluation.metrics["per_example"]["outcome_counts"],
                        "seconds": evaluation.metrics["timing_s"]}
    return result
