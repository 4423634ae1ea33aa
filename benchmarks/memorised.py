"""Memorised subjects: does unlearning remove what a model memorised, as retraining does?

Random samples of a well-generalising model are not memorised, so the subject scenarios cannot tell
the methods apart. Here, per seed, one training set carries subjects of three kinds
(`lethe.data.planted`): wrong-label subjects (label memorisation), stamped subjects (a pattern and a
label of their own: input memorisation) and stamped subjects whose label is their images' true class (a
shared trait the label does not give away), and a recipe that memorises them (a small training set, many
epochs; the profile's `memorised_*` fields). The planted set is published as a `shards:` data set
(as production data is), with a subject map (the planted subjects, synthetic subjects of 10 for the rest),
so the original, the retrained model and K reference models (`lethe.audit.prepare_references`, halves by
subject) all train on it through the product's own code.

Per kind and model (original, retrained, finetune, each dampening strategy through `choose_dampening`,
each repair method after the default dampening: benchmarks/remedy.py): the agreement with the planted
labels on the subjects' images, the pattern-trigger rate (held-out test images stamped with a subject's
pattern, predicted as its label), the per-sample flagged share at 1% FPR, the share of persons the
product's person test flags (`per_example_evidence` on `ReferenceSet.outputs`), test accuracy, and what
the gate would do (its per-person check: any subject still flagged refuses the candidate); per person,
its statistic, p-value, flag and outcome (benchmarks/judge.py: the judge's goals). Where no strategy
meets the goal, the remedy is `lethe retrain`: the retrained model is exactly what it trains (the
recipe without the planted samples), so its time and result stand beside the candidates.
"""

from __future__ import annotations

import csv
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

import lethe
from benchmarks.judge import judge_goals, judge_seed, person_rows
from benchmarks.profiles import Profile
from benchmarks.remedy import ladder_goals, repair_rows
from benchmarks.speed import d_pass
from benchmarks.strategies import DAMPENING_METHODS, DEFAULT_STRATEGY, dampened_rows
from benchmarks.timing import section, timed
from benchmarks.trained import cache_key, cached_model, finetuned
from benchmarks.workbench import BenchData, distances, mean_std, means, take
from lethe.audit import find_references, prepare_references
from lethe.config import settings
from lethe.data import SampleSet, load_dataset, publish_dataset, resolve_forget_set, synthetic_subjects
from lethe.data.planted import KINDS, STAMPED_KINDS, PlantedSubjects, agreement, plant_subjects
from lethe.evaluation import predict_logits
from lethe.evaluation.evaluator import DEFAULT_BATCH_SIZE as FORWARD_BATCH_SIZE
from lethe.evaluation.per_example import per_example_evidence
from lethe.forgetting.resolved import ResolvedForgetSet
from lethe.models import load_model
from lethe.models.baseline import train_model_dir
from lethe.steps.unlearn import make_target

FPR = "0.01"  # the reported flagged share's false-positive rate
#: The goal: the best candidate within 5 points of the retrained model on memorised agreement and on the
#: flagged share, at no more than 1 point of test accuracy below the original.
DISTANCE_LIMIT = 0.05
TEST_DROP_LIMIT = 0.01
MEMORISED_METRICS = ("memorised_agreement", "stamped_rate", "flagged_share", "subjects_flagged",
                     "still_flagged", "forget_loss", "test_accuracy")


def root() -> Path:
    return settings().home / "bench" / "memorised"


def published(planted: PlantedSubjects, test: SampleSet) -> tuple[SampleSet, SampleSet, Path]:
    """The planted set published as a `shards:` data set (once per content), read back as the product
    reads it: its name is what the recipe records, so reference models train on the same data. Beside
    it, its subject map: the planted subjects, and synthetic subjects of 10 for every other sample (the
    reference models' halves keep each person whole)."""
    folder = root() / "data" / planted.train.fingerprint()[:20]
    if not (folder / "lethe-manifest.json").is_file():
        source = f"{planted.train.name} with planted subjects"
        publish_dataset(planted.train, test, str(folder), source=source)
    subjects = folder.parent / f"{folder.name}-subjects.csv"
    if not subjects.is_file():
        planted_ids = {i for ids in planted.subjects.values() for i in ids}
        rest = synthetic_subjects([i for i in planted.train.ids if i not in planted_ids])
        with subjects.open("w", newline="") as handle:
            csv.writer(handle).writerows([["subject_id", "sample_id"], *(
                [subject, i] for subject, ids in {**planted.subjects, **rest}.items() for i in ids)])
    name = f"shards:{folder}"
    return load_dataset(name, "train"), load_dataset(name, "test"), subjects


def trained(train: SampleSet, test: SampleSet, *, arch: str, epochs: int, seed: int, exclude: list[str],
            device: torch.device, use_cache: bool) -> tuple[Path, nn.Module, dict[str, Any], bool]:
    """`lethe train` (or `lethe retrain`'s training: the same recipe minus `exclude`), cached by content."""
    key = cache_key({"arch": arch, "epochs": epochs, "seed": seed, "data": train.fingerprint(),
                     "exclude": sorted(exclude), "lethe": lethe.__version__})
    folder = root() / "models" / key
    hit = cached_model(folder, "train.json") if use_cache else None
    if hit:
        return folder, *hit, True
    shutil.rmtree(folder, ignore_errors=True)
    record = train_model_dir(train.name, arch, folder, epochs=epochs, seed=seed, exclude_ids=exclude,
                             device=str(device), progress=False, train=train, test=test)
    model, _ = load_model(folder)
    return folder, model.eval(), record, False


class MemorisedMeasurer:
    """The memorised-subject metrics of one model, against the original and the reference models: the
    product's person test (`per_example_evidence` on `ReferenceSet.outputs`), one request per subject."""

    def __init__(self, planted: PlantedSubjects, train: SampleSet, test: SampleSet, references: Any,
                 original: nn.Module, device: torch.device) -> None:
        self.planted, self.device = planted, device
        self.forget = train.subset(train.indices_of([i for ids in planted.subjects.values() for i in ids]))
        self.references = references.outputs(references.indices_of(self.forget.ids))
        self.test = test
        self.labels = {"forget": self.forget.labels, "test": test.labels}
        self.requests = {s: self.forget.indices_of(ids) for s, ids in planted.subjects.items()}
        stamped = planted.stamped_test  # (None: no stamped subjects, so no trigger images either)
        self.triggers = {s: stamped.indices_of(ids) for s, ids in planted.stamped_test_subjects.items()}
        self.original_logits = self.logits(original)

    def logits(self, model: nn.Module) -> dict[str, torch.Tensor]:
        sets = {"forget": self.forget, "test": self.test}
        if self.planted.stamped_test is not None:
            sets["stamped"] = self.planted.stamped_test
        return {name: predict_logits(model, samples.batches(FORWARD_BATCH_SIZE, with_labels=False),
                                     device=self.device, progress=False)
                for name, samples in sets.items()}

    def __call__(self, model: nn.Module) -> dict[str, Any]:
        logits = self.logits(model)
        split = {k: logits[k] for k in ("forget", "test")}
        parent = {k: self.original_logits[k] for k in ("forget", "test")}
        evidence = per_example_evidence(parent, split, self.labels, self.references, requests=self.requests)
        requests = evidence.evidence["requests"]
        predicted = logits["forget"].argmax(dim=1)
        stamped = self.planted.stamped_test
        triggered = None if stamped is None else logits["stamped"].argmax(dim=1) == stamped.labels
        persons = person_rows(requests, self.planted, self.requests, self.triggers, predicted,
                              self.labels["forget"], triggered, FPR)
        out: dict[str, Any] = {"test_accuracy": agreement(logits["test"].argmax(dim=1), self.test.labels)}
        for kind in KINDS:
            subjects = self.planted.of_kind(kind)
            if not subjects:
                continue
            rows = torch.cat([self.requests[s] for s in subjects])
            shares = [requests[s]["fpr"][FPR]["candidate"] for s in subjects]
            loss = nn.functional.cross_entropy(logits["forget"][rows], self.labels["forget"][rows])
            row = {"memorised_agreement": agreement(predicted[rows], self.labels["forget"][rows]),
                   "forget_loss": float(loss),
                   "flagged_share": sum(x["flagged"] for x in shares) / max(1, sum(x["n"] for x in shares)),
                   "non_member_share": requests[subjects[0]]["fpr"][FPR]["candidate_non_member"]["share"],
                   "subjects_flagged": sum(persons[s]["flagged"] for s in subjects) / len(subjects),
                   "still_flagged": sum(persons[s]["outcome"] == "still_flagged"
                                        for s in subjects) / len(subjects),
                   "outcomes": {o: sum(persons[s]["outcome"] == o for s in subjects)
                                for o in ("removed", "not_memorised", "still_flagged", "inconclusive")}}
            if kind in STAMPED_KINDS and triggered is not None:
                held_out = torch.cat([self.triggers[s] for s in subjects])
                row["stamped_rate"] = float(triggered[held_out].double().mean())
            out[kind] = row
        person = evidence.evidence.get("person") or {}
        out["non_member_rate"] = (person.get("non_member_rate") or {}).get(FPR)
        out["judge_refused"] = evidence.evidence.get("refused")
        # The gate's per-person check: any subject still flagged, or no person judged, refuses it.
        out["gate_refuses"] = bool(out["judge_refused"]) or any(p["outcome"] == "still_flagged"
                                                               for p in persons.values())
        out["persons"] = persons
        return out


def run_seed(profile: Profile, base: SampleSet, test: SampleSet, seed: int, *, device: torch.device,
             use_cache: bool) -> dict[str, Any]:
    planted = plant_subjects(base, test, wrong_label=profile.memorised_wrong_label,
                             stamped=profile.memorised_stamped, per_subject=profile.memorised_per_subject,
                             stamped_test_per_subject=profile.memorised_stamped_test, seed=seed,
                             stamped_true_class=profile.memorised_stamped_true_class)
    train, test, subject_map = published(planted, test)
    arch, epochs = profile.arch, profile.memorised_epochs
    original_dir, original, original_record, original_cached = trained(
        train, test, arch=arch, epochs=epochs, seed=seed, exclude=[], device=device, use_cache=use_cache)
    audit_root = str(root() / "audit")
    cached_refs = find_references(original_dir, root_uri=audit_root) is not None
    references, references_s = timed(lambda: prepare_references(
        original_dir, k=profile.memorised_references, seed=seed, root_uri=audit_root, device=str(device),
        progress=False, subject_map=subject_map), device)
    forget_ids = [i for ids in planted.subjects.values() for i in ids]
    _, retrained, retrained_record, retrained_cached = trained(
        train, test, arch=arch, epochs=epochs, seed=seed, exclude=forget_ids, device=device,
        use_cache=use_cache)
    measure = MemorisedMeasurer(planted, train, test, references, original, device)
    rows: dict[str, Any] = {"original": {**measure(original), "seconds": original_record["seconds"],
                                         "info": {"cached": original_cached}},
                            "retrained": {**measure(retrained), "seconds": retrained_record["seconds"],
                                          "info": {"cached": retrained_cached}}}
    split = resolve_forget_set(train, ids=forget_ids)
    tuned, tuned_s = finetuned(original, take(split.retain, profile.finetune_limit, seed=seed),
                               epochs=profile.finetune_epochs, seed=seed, device=device)
    rows["finetune"] = {**measure(tuned), "seconds": tuned_s, "info": {"epochs": profile.finetune_epochs}}
    b = profile.importance_batch_size
    full = {m: d_pass(original, train, b, device, method=m)[0] for m in ("lfssd", "ssd")}
    forgets = {m: d_pass(original, split.forget, b, device, method=m) for m in ("lfssd", "ssd")}
    request = ResolvedForgetSet(dataset=train.name, scenario="subject", train=train, test=test, split=split,
                      forget_class=None)
    target = timed(lambda: make_target(original, request, device=str(device), seed=seed), device)
    kept: dict[str, nn.Module] = {}
    rows.update(dampened_rows(original, full, forgets, request, target, measure,
                              paper_alpha=profile.paper_alpha, device=device, keep=kept))
    recipe = {"training_samples": len(train), "epochs": epochs}
    rows.update(repair_rows(original, kept[DEFAULT_STRATEGY], rows[DEFAULT_STRATEGY]["seconds"], split,
                            recipe, measure, share=profile.repair_share, seed=seed, device=device))
    return {"seed": seed, "train_samples": len(train), "forget_samples": len(split.forget),
            "subjects": {kind: len(planted.of_kind(kind)) for kind in KINDS},
            "stamped_test_samples": len(planted.stamped_test) if planted.stamped_test is not None else 0,
            "train_accuracy": original_record.get("train_accuracy"),
            "references": {"k": references.k, "epochs": references.epochs, "seconds": references_s,
                           "cached": cached_refs},
            "lfssd_importance_ratio": _importance_ratios(full["lfssd"], forgets["lfssd"][0]),
            "judge": judge_seed(rows, planted.kinds), "methods": rows}


def _importance_ratios(full: Any, forget: Any) -> dict[str, float]:
    """How far LFSSD's forget importances stand out: the largest I_f / I_D over every element."""
    largest = 0.0
    for name, values in full.items():
        ratio = forget[name] / values.clamp(min=1e-30)
        largest = max(largest, float(ratio[values > 0].max()) if bool((values > 0).any()) else 0.0)
    return {"max_if_over_id": largest}


def run_memorised(profile: Profile, data: BenchData, *, device: torch.device,
                  use_cache: bool = True) -> dict[str, Any]:
    """Every seed of the memorised-subject scenario, summarised; `skipped` with the reason when the
    profile skips it."""
    if profile.memorised_skip:
        return {"skipped": profile.memorised_skip}
    limit = profile.memorised_train_limit
    base = data.train if limit is None or limit >= len(data.train) else data.train.subset(torch.arange(limit))
    per_seed = {}
    for seed in range(profile.seeds):
        with section(f"quality seed {seed}: memorised subjects"):
            per_seed[str(seed)] = run_seed(profile, base, data.test, seed, device=device, use_cache=use_cache)
    summary = summarise_memorised(per_seed)
    p = profile
    return {"recipe": {"arch": p.arch, "train_samples": len(base), "first_images": True,
                       "epochs": p.memorised_epochs, "batch_size": 128, "lr": 3e-3,
                       "weight_decay": "AdamW 5e-4 (lethe train's default)", "augment": False,
                       "wrong_label_subjects": p.memorised_wrong_label,
                       "stamped_subjects": p.memorised_stamped,
                       "stamped_true_class_subjects": p.memorised_stamped_true_class,
                       "halves": "by subject (planted subjects, synthetic subjects of 10 for the rest)",
                       "repair_share": p.repair_share, "images_per_subject": p.memorised_per_subject,
                       "stamped_test_per_subject": p.memorised_stamped_test,
                       "reference_models": p.memorised_references},
            "limits": {"distance_max": DISTANCE_LIMIT, "test_accuracy_drop_max": TEST_DROP_LIMIT, "fpr": FPR},
            "summary": summary, "goals": memorised_goals(summary), "judge_goals": judge_goals(per_seed),
            "ladder_goals": ladder_goals(per_seed, summary), "per_seed": per_seed}


def _value(row: dict[str, Any], metric: str, kind: str) -> float | None:
    return row.get("test_accuracy") if metric == "test_accuracy" else (row.get(kind) or {}).get(metric)


def summarise_memorised(per_seed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per kind and method: mean ± std over seeds of each metric, of its distance to the retrained model,
    the test-accuracy drop from the original, how often the gate would refuse it, its seconds."""
    seeds = sorted(per_seed)
    methods = list(per_seed[seeds[0]]["methods"])
    gold = [per_seed[s]["methods"]["retrained"] for s in seeds]
    original = [per_seed[s]["methods"]["original"] for s in seeds]
    compared = [m for m in MEMORISED_METRICS if m != "test_accuracy"]  # (its drop is reported instead)
    out: dict[str, Any] = {}
    for kind in KINDS:
        if not any(kind in row for row in original):
            continue
        value = partial(_value, kind=kind)
        out[kind] = {}
        for method in methods:
            rows = [per_seed[s]["methods"][method] for s in seeds]
            out[kind][method] = {
                "metrics": means(rows, MEMORISED_METRICS, value),
                "distance_to_retrained": distances(rows, gold, compared, value),
                "test_accuracy_drop": mean_std([o["test_accuracy"] - r["test_accuracy"]
                                                for r, o in zip(rows, original, strict=True)]),
                "gate_refuses": sum(bool(r["gate_refuses"]) for r in rows), "seeds": len(rows),
                "seconds": mean_std([r["seconds"] for r in rows])}
    return out


def memorised_goals(summary: dict[str, Any]) -> dict[str, Any]:
    """Per kind: the best dampening candidate against the goal, or, where none meets it, whether the gate
    refuses every candidate and what the remedy (`lethe retrain`) costs and gives."""
    goals = {}
    for kind, by_method in summary.items():
        def misses(method: str, by_method: dict[str, Any] = by_method) -> float:
            d, s = by_method[method]["distance_to_retrained"], by_method[method]
            values = [d["memorised_agreement"]["mean"], d["flagged_share"]["mean"]]
            miss = max((v or 0.0) - DISTANCE_LIMIT for v in values)
            drop = s["test_accuracy_drop"]["mean"] or 0.0
            return max(miss, drop - TEST_DROP_LIMIT, 0.0)

        best = min(DAMPENING_METHODS, key=misses)
        met = misses(best) <= 1e-9
        retrained = by_method["retrained"]
        goals[kind] = {
            "best": best, "met": met, "miss_by": misses(best),
            "original_subjects_flagged": by_method["original"]["metrics"]["subjects_flagged"]["mean"],
            "retrained_subjects_flagged": retrained["metrics"]["subjects_flagged"]["mean"],
            "gate_refuses_every_candidate": all(by_method[m]["gate_refuses"] == by_method[m]["seeds"]
                                                for m in DAMPENING_METHODS),
            "remedy": None if met else {"command": "lethe retrain", "seconds": retrained["seconds"],
                                        "metrics": retrained["metrics"]},
        }
    return goals
