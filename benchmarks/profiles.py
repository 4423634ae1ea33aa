"""How big a benchmark run is: the full run (`make bench`, about an hour on 2 cores) and the CI smoke run.

Every size that decides the run's cost lives here, so the design in benchmarks/README.md and the
code cannot drift apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from lethe.demo import EPOCHS

DEMO_EPOCHS = EPOCHS["fashion-mnist"]


@dataclass(frozen=True)
class Profile:
    name: str
    dataset: str = "fashion-mnist"
    arch: str = "convnet"
    # Quality: models are trained on a seeded slice of the train split (None = all of it).
    train_limit: int | None = None
    seeds: int = 3
    # The demo's training recipe (lethe.demo.EPOCHS; batch size and lr of `lethe train`, in
    # benchmarks.trained.Recipe): original and retrained alike.
    epochs: int = DEMO_EPOCHS
    finetune_epochs: int = 1  # the finetune baseline, on the retain set
    finetune_limit: int | None = 10_000  # retain samples the finetune epochs see; None = all
    forget_classes: tuple[int, ...] = tuple(range(10))  # every Fashion-MNIST class
    subject_sizes: tuple[int, ...] = (100, 1000)
    importance_batch_size: int = 1  # the D and Df passes (values depend on it); 1 = per sample
    eval_retain_limit: int | None = 4_000  # retain samples each model is measured on
    eval_test_limit: int | None = 4_000  # test samples each model is measured on
    # The feature probe's training sample (class scenarios): retain samples plus forget samples, so
    # the forgotten class is about as frequent as the others; it is scored on the test samples.
    probe_retain_limit: int | None = 4_500
    probe_forget_limit: int | None = 500
    paper_alpha: float = 10.0  # the LFSSD/SSD papers' α for ResNet18
    # Memorised subjects (benchmarks/memorised.py): a recipe that memorises them. The first
    # `memorised_train_limit` training images, `memorised_epochs` epochs (lethe train's lr, batch size and
    # AdamW weight decay 5e-4, no augmentation), wrong-label and stamped subjects of
    # `memorised_per_subject` images each, K reference models on random halves with the same recipe.
    memorised_train_limit: int | None = 5_000
    memorised_epochs: int = 30
    memorised_wrong_label: int = 30
    memorised_stamped: int = 30
    memorised_stamped_true_class: int = 30  # stamped subjects whose label is their images' true class
    memorised_per_subject: int = 10
    memorised_stamped_test: int = 20  # held-out test images stamped with each stamped subject's pattern
    memorised_references: int = 8
    memorised_skip: str | None = None  # the reason, when a profile leaves the scenario out
    # The ladder's repair rung (benchmarks/remedy.py): each repair method's budget, a share of the
    # memorised recipe's sample-steps (the NeurIPS 2023 challenge's cap: 20% of a retraining).
    repair_share: float = 0.2
    # Speed: the request and scaling run on a slice of the train split (None = all of it).
    speed_train_limit: int | None = None
    request_size: int = 100  # forget samples of the cached-vs-recomputed request
    overhead_batches: int = 20  # batches of the importance-vs-bare fwd+bwd comparison
    # The comparison runs the papers' batch-mean pass (the same work as a bare forward+backward);
    # what per-sample semantics cost on top is measured apart (`per_sample_samples`).
    overhead_batch_size: int = 128
    per_sample_samples: int = 4_096  # samples of the per-sample vs batch-mean pass comparison
    overhead_repeats: int = 5
    latency_repeats: int = 5
    scaling_sizes: tuple[int, ...] = (5_000, 10_000, 20_000, 40_000)
    shards: int = 4
    eval_repeats: int = 3  # whole evaluations timed against the bare forward passes
    # Scale on paper: ResNet50 per-sample throughput on this many images of this size (< 1 min on 2 cores).
    scale_images: int = 4
    scale_image_size: int = 224
    # The scheduled pipeline through kfp.local against its steps called directly (minutes; needs the
    # model trained on the whole train split, as the steps check the data against the model's card).
    pipeline_overhead: bool = True
    # Sensitivity sweep
    sweep_alphas: tuple[float, ...] = (1.5, 2, 3, 5, 7, 10, 15, 25, 50, 100, 200)
    sweep_lambdas: tuple[float, ...] = (0.1, 0.5, 1.0)
    sweep_eval_limit: int = 1_500

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_seeds(self, seeds: int | None) -> Profile:
        return self if seeds is None else replace(self, seeds=int(seeds))


FULL = Profile(name="full")

# CI smoke run (≤ 5 min on 2 cores): the same code paths on small slices of the same data.
QUICK = Profile(
    name="quick", train_limit=3_000, seeds=1, epochs=1, finetune_limit=1_000, forget_classes=(7,),
    subject_sizes=(100,), eval_retain_limit=1_000, eval_test_limit=1_000, probe_retain_limit=1_800,
    probe_forget_limit=200, speed_train_limit=6_000, overhead_batches=4, per_sample_samples=1_024,
    overhead_repeats=3, latency_repeats=3, scaling_sizes=(1_000, 2_000, 4_000), eval_repeats=1,
    scale_images=1, pipeline_overhead=False, sweep_alphas=(2, 5, 10, 25, 70), sweep_lambdas=(0.5, 1.0),
    sweep_eval_limit=500,
    # The memorised scenario's code path on a tiny slice (its numbers say nothing; the full run's do).
    memorised_train_limit=1_000, memorised_epochs=8, memorised_wrong_label=4, memorised_stamped=4,
    memorised_stamped_true_class=4, memorised_stamped_test=10, memorised_references=4
)

# Seconds, for the unit tests: the bundled 8x8 digits, the same code paths.
SMOKE = replace(
    QUICK, name="smoke", dataset="digits", train_limit=None, epochs=2, finetune_limit=None,
    importance_batch_size=32, eval_retain_limit=None, eval_test_limit=None, speed_train_limit=None,
    request_size=50, overhead_batches=2, overhead_batch_size=32, per_sample_samples=256, overhead_repeats=1,
    latency_repeats=1, scaling_sizes=(200, 400, 800), shards=3, scale_image_size=32,
    sweep_alphas=(2, 10, 50), sweep_lambdas=(1.0,), sweep_eval_limit=300, memorised_train_limit=None,
    memorised_epochs=6
)

# The memorised scenario alone (`--small --only memorised`) where the full recipe cannot run in time on a
# shared 2-core machine: 3 seeds, K=8 reference models (halves by subject), a smaller recipe that still
# memorises (2,000 images, 15 epochs, 10 subjects of each kind per seed).
SMALL = replace(
    QUICK, name="small", seeds=3, memorised_train_limit=2_000, memorised_epochs=15, memorised_wrong_label=10,
    memorised_stamped=10, memorised_stamped_true_class=10, memorised_stamped_test=20, memorised_references=8
)

PROFILES = {"full": FULL, "quick": QUICK, "smoke": SMOKE, "small": SMALL}
