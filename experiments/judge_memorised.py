"""The judge of a person on memorised subjects (issue 23): does the per-person test flag the persons the
original measurably memorised, clear them on the retrained model, and does the gate follow?

The benchmark's memorised recipe (benchmarks/memorised.py, benchmarks/profiles.py): the first 5,000
Fashion-MNIST training images, `convnet`, 30 epochs, lethe train's lr and batch size, K=8 reference
models as `lethe.audit` trains them (halves by subject, the root's recipe). Planted subjects of 10
images: wrong-label, stamped (a pattern and a random label) and stamped-true-class (a pattern on images
of one class, which keep their label). Every other training image belongs to a synthetic subject of
10 (the subject map the references split by).

    PYTHONPATH=src:. python experiments/judge_memorised.py prepare --seed 0 --out /tmp/judge-exp
    PYTHONPATH=src:. python experiments/judge_memorised.py analyse --seeds 0 --out /tmp/judge-exp

`prepare` trains (minutes per model on a CPU; cached per seed); `analyse` only reads logits.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

TRAIN_LIMIT = 5_000
EPOCHS = 30
K = 8
PER_KIND = 20
PER_SUBJECT = 10
STAMPED_TEST = 20
MEMORISED_GAP = 0.05  # "measurably memorised": agreement or trigger above the retrained model's by 5 points


def seed_dir(out: Path, seed: int, weight_decay: float | None) -> Path:
    suffix = "" if weight_decay is None else f"-wd{weight_decay:g}"
    return out / f"seed{seed}{suffix}"


def prepare(seed: int, out: Path, weight_decay: float | None, threads: int, accuracy_samples: int | None
            ) -> None:
    from lethe.audit import prepare_references
    from lethe.data import load_dataset, publish_dataset, synthetic_subjects
    from lethe.data.planted import plant_subjects
    from lethe.evaluation import predict_logits
    from lethe.models import load_model
    from lethe.models.baseline import train_model_dir
    from lethe.models.training import DEFAULT_WEIGHT_DECAY

    torch.set_num_threads(threads)
    folder = seed_dir(out, seed, weight_decay)
    folder.mkdir(parents=True, exist_ok=True)
    wd = DEFAULT_WEIGHT_DECAY if weight_decay is None else weight_decay
    full, test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    base = full.subset(torch.arange(TRAIN_LIMIT))
    planted = plant_subjects(base, test, wrong_label=PER_KIND, stamped=PER_KIND, stamped_true_class=PER_KIND,
                             per_subject=PER_SUBJECT, stamped_test_per_subject=STAMPED_TEST, seed=seed)
    data = folder / "data"
    if not (data / "lethe-manifest.json").is_file():
        publish_dataset(planted.train, test, str(data), source="fashion-mnist first 5000, planted subjects")
    name = f"shards:{data}"
    train, test = load_dataset(name, "train"), load_dataset(name, "test")
    planted_ids = {i for ids in planted.subjects.values() for i in ids}
    rest = synthetic_subjects([i for i in train.ids if i not in planted_ids])
    subject_csv = folder / "subjects.csv"
    with subject_csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject_id", "sample_id"])
        for subject, ids in {**planted.subjects, **rest}.items():
            writer.writerows([subject, i] for i in ids)
    (folder / "planted.json").write_text(json.dumps({
        "subjects": planted.subjects, "kinds": planted.kinds, "labels": planted.labels,
        "stamped_test_subjects": planted.stamped_test_subjects, "weight_decay": wd}, indent=1))
    if planted.stamped_test is not None:
        torch.save({"inputs": planted.stamped_test.inputs, "labels": planted.stamped_test.labels,
                    "ids": planted.stamped_test.ids}, folder / "stamped_test.pt")
    timings: dict[str, float] = {}
    models = {}
    for role, exclude in (("original", []), ("retrained", sorted(planted_ids))):
        model_dir = folder / role
        if not (model_dir / "train.json").is_file():
            started = time.perf_counter()
            # The test accuracy measured after each epoch changes nothing of the training: on a busy CPU a
            # slice of the test split saves 40% of the time (`--accuracy-samples`).
            shown = test if accuracy_samples is None else test.subset(torch.arange(accuracy_samples))
            train_model_dir(name, "convnet", model_dir, epochs=EPOCHS, seed=seed, exclude_ids=exclude,
                            weight_decay=wd, device="cpu", progress=False, train=train, test=shown)
            timings[role] = time.perf_counter() - started
            print(f"seed {seed}: {role} trained in {timings[role]:.0f} s", flush=True)
        models[role] = load_model(model_dir)[0].eval()
    os.environ["LETHE_SUBJECT_MAP"] = str(subject_csv)
    started = time.perf_counter()
    references = prepare_references(folder / "original", k=K, seed=seed, root_uri=str(folder / "audit"),
                                    device="cpu", progress=False, subject_map=str(subject_csv))
    timings["references"] = time.perf_counter() - started
    print(f"seed {seed}: references ready in {timings['references']:.0f} s ({references.uri})", flush=True)
    logits = {}
    for role, model in models.items():
        sets = {"train": train, "test": test}
        if planted.stamped_test is not None:
            sets["stamped"] = planted.stamped_test
        logits[role] = {split: predict_logits(model, samples.batches(512, with_labels=False), device="cpu",
                                              progress=False) for split, samples in sets.items()}
    torch.save(logits, folder / "logits.pt")
    (folder / "timings.json").write_text(json.dumps(timings, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("prepare", "analyse"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/judge-exp"))
    parser.add_argument("--weight-decay", type=float, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--accuracy-samples", type=int, default=None,
                        help="test samples of the per-epoch accuracy of the original and the retrained model")
    args = parser.parse_args()
    if args.action == "prepare":
        prepare(args.seed, args.out, args.weight_decay, args.threads, args.accuracy_samples)
    else:
        from experiments.judge_analysis import analyse

        result: dict[str, Any] = analyse(args.seeds, args.out, args.weight_decay)
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
