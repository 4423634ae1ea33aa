"""Speed: the seven ratios, one script for the CPU and a GPU, every part the product's own code.

    python -m benchmarks.speed --device cuda [--train-samples 50000] [--arch resnet18-cifar] [--out FILE]
    python -m benchmarks.speed --device cpu --quick      # seconds, to check the script

`python -m benchmarks.run` calls `measure` on the CPU with the quality run's model (the demo's recipe) and
real data; run alone, this script trains a model with its own recipe on synthetic images of the arch's
shape (speed does not depend on the pixels) and measures it the same way. "Request": a subject request
of `request_size` samples with the full-data importances (D) cached. Every timing is wall-clock on the
device given (CUDA timings are synchronised). The seven ratios, what each divides by what, and their
targets: `SPEED_TARGETS` in benchmarks/targets.py. `request_to_limit`'s floor is the least a request must
do to know its result: the Df pass, one dampening and one measurement of the forgetting target at the
chosen point (until 2026-12 it had no forward pass); `eval_efficiency` divides by the evaluate step's
whole evaluation (`evaluate_candidate`), `pipeline_overhead` by the steps called directly
(`benchmarks.measure`).

`scale` puts the D pass of 1.28 M ImageNet-sized images on paper from a measured ResNet50 throughput.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks import engine_speed
from benchmarks.measure import measure_overhead
from benchmarks.profiles import FULL, QUICK, Profile
from benchmarks.targets import check_targets
from benchmarks.timing import median_seconds, now, section, timed, write_headline
from benchmarks.workbench import command_line, machine
from lethe.audit import DEFAULT_K
from lethe.data import Normalization, SampleSet, resolve_forget_set, subject_map
from lethe.devices import default_device
from lethe.errors import LetheError
from lethe.evaluation.evaluator import DEFAULT_BATCH_SIZE, evaluate_candidate
from lethe.evaluation.forward import predict_logits
from lethe.evaluation.per_example import ReferenceOutputs
from lethe.forgetting.resolved import ResolvedForgetSet
from lethe.models import build_model, save_model
from lethe.models.training import train_classifier
from lethe.steps.full_importances import plan_shards, shard_range
from lethe.steps.importance_pass import importances_of
from lethe.steps.unlearn import choose_dampening, make_target
from lethe.unlearning import Importances, dampen


def d_pass(model: nn.Module, samples: SampleSet, batch_size: int, device: torch.device,
           method: str = "lfssd") -> tuple[Importances, float]:
    """The importances over `samples` and the seconds they took (batch size 1: per sample)."""
    return timed(lambda: importances_of(model, samples, batch_size=batch_size, method=method,
                                        device=str(device), progress=False), device)


def per_sample_ratio(model: nn.Module, samples: SampleSet, *, batch_size: int,
                     device: torch.device) -> dict[str, Any]:
    """The per-sample pass against a bare forward+backward over the same samples in batches."""
    model = model.to(device)

    def bare() -> None:
        batches = samples.batches(batch_size, with_labels=False)
        engine_speed.bare_forward_backward(model, (x.to(device) for x in batches))

    d_pass(model, samples.subset(torch.arange(min(2 * batch_size, len(samples)))), 1, device)  # warm-up
    bare()
    _, per_sample_s = d_pass(model, samples, 1, device)
    _, bare_s = timed(bare, device)
    return {"samples": len(samples), "batch_size": batch_size, "per_sample_s": per_sample_s, "bare_s": bare_s,
            "per_sample_samples_per_s": len(samples) / per_sample_s, "ratio": per_sample_s / bare_s}


def pick_subjects(train: SampleSet, size: int, *, seed: int) -> list[str]:
    """Synthetic subjects, in a seeded random order, until they own at least `size` samples."""
    mapping = subject_map(train)
    names = sorted(mapping)
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed)).tolist()
    chosen, owned = [], 0
    for k in order:
        chosen.append(names[k])
        owned += len(mapping[names[k]])
        if owned >= size:
            break
    return chosen


def request_costs(model: nn.Module, train: SampleSet, test: SampleSet, *, size: int, batch_size: int,
                  repeats: int, device: torch.device) -> tuple[dict[str, Any], nn.Module, ResolvedForgetSet]:
    """A subject request with D cached (loaded from a file), with ASSD's α and with the default selection,
    against the same request recomputing D and against its floor (Df pass + one dampening + one measurement
    of the target at the chosen point). Returns the figures, the default selection's candidate and the
    request. (`scale_on_paper` still projects the floor without the target's measurement.)"""
    split = resolve_forget_set(train, subjects=pick_subjects(train, size, seed=0))
    request = ResolvedForgetSet(dataset=train.name, scenario="subject", train=train, test=test, split=split,
                      forget_class=None)
    full, d_seconds = d_pass(model, train, batch_size, device)
    candidates: list[nn.Module] = []  # every request's candidate and choice, the last one reported
    choices: list[Any] = []

    def forget_pass() -> Importances:
        return importances_of(model, split.forget, batch_size=batch_size, device=str(device), progress=False)

    with tempfile.TemporaryDirectory(prefix="lethe-bench-") as tmp:
        path = full.save(Path(tmp) / "full.safetensors")

        def cached_request(alpha: str) -> nn.Module:
            d, f = Importances.load(path), forget_pass()
            target = make_target(model, request, device=str(device)) if alpha == "search" else None
            choice = choose_dampening(model, d, f, request, target, alpha=alpha)
            candidate = copy.deepcopy(model)
            dampen(candidate, d, f, alpha=choice.alpha, parameters=choice.parameters)
            candidates.append(candidate)
            choices.append(choice)
            return candidate

        assd = median_seconds(lambda: cached_request("assd"), repeats, device)
        # The selection's forward passes are warm from the ASSD requests; it is the slow part.
        default = median_seconds(lambda: cached_request("search"), max(1, repeats // 2), device,
                                 warm_up=False)
        chosen = choices[-1]
        forget_only = median_seconds(forget_pass, repeats, device)
        f = forget_pass()
        one_dampening = median_seconds(
            lambda: dampen(copy.deepcopy(model), full, f, alpha=chosen.alpha, parameters=chosen.parameters),
            repeats, device)
        target = make_target(model, request, device=str(device))
        one_measurement = median_seconds(lambda: target.measure(candidates[-1]), repeats, device)
        load = median_seconds(lambda: Importances.load(path), repeats, device)
    limit = forget_only["median_s"] + one_dampening["median_s"] + one_measurement["median_s"]
    recomputed = d_seconds + assd["median_s"]
    return {
        "forget_samples": len(split.forget), "train_samples": len(train), "batch_size": batch_size,
        "d_pass_s": d_seconds, "assd_request_s": assd["median_s"], "assd_recomputed_request_s": recomputed,
        "default_request_s": default["median_s"], "default_alpha": chosen.alpha,
        "default_cutoff": chosen.cutoff, "default_trials": len((chosen.selection or {}).get("trials", [])),
        "default_forward_trials": (chosen.selection or {}).get("forward_trials"),
        "limit_s": limit, "limit": "Df pass + one dampening + one measurement of the target",
        "parts": {"load_d_s": load["median_s"], "forget_pass_s": forget_only["median_s"],
                  "dampen_copy_s": one_dampening["median_s"],
                  "target_measurement_s": one_measurement["median_s"]},
        "cached_speedup": recomputed / assd["median_s"], "request_to_limit": default["median_s"] / limit,
        "timings": {"assd": assd, "default": default},
    }, candidates[-1], request


def synthetic_references(parent: nn.Module, request: ResolvedForgetSet, device: torch.device,
                         k: int) -> ReferenceOutputs:
    """Reference logits of the right shape (K models, half of them "out" per forget sample): the per-example
    test costs the same whatever the values, and training K models would time training, not evaluation."""
    generator = torch.Generator().manual_seed(3)

    def noisy(samples: SampleSet) -> torch.Tensor:
        logits = predict_logits(parent, samples.batches(DEFAULT_BATCH_SIZE, with_labels=False), device=device,
                                progress=False)
        return logits + torch.randn((k, *logits.shape), generator=generator)

    forget = noisy(request.split.forget)
    out = torch.rand(forget.shape[:2], generator=generator) < 0.5
    return ReferenceOutputs(forget, out, noisy(request.test))


def eval_efficiency(parent: nn.Module, candidate: nn.Module, request: ResolvedForgetSet, *, repeats: int,
                    device: torch.device) -> dict[str, Any]:
    """The evaluate step's whole evaluation (both models, retain + forget + test, accuracies, both
    population attacks, the per-example test against K reference models, Evidently, plots, the gate)
    against the bare batched forward passes it cannot avoid."""
    sets = [request.split.retain, request.split.forget, request.test]
    references = synthetic_references(parent, request, device, DEFAULT_K)

    def bare() -> None:  # the product's batched forward (`predict_logits`), nothing computed on the logits
        for model in (parent, candidate):
            for samples in sets:
                predict_logits(model, samples.batches(DEFAULT_BATCH_SIZE, with_labels=False), device=device,
                               progress=False)

    metrics: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lethe-bench-eval-") as tmp:

        def whole() -> None:
            metrics.append(evaluate_candidate(
                candidate, parent, retain=request.split.retain, forget=request.split.forget,
                test=request.test, scenario="subject", out_dir=tmp, device=device, progress=False,
                references=references))

        bare_s = median_seconds(bare, repeats, device)["median_s"]
        whole_s = median_seconds(whole, repeats, device)["median_s"]  # its warm-up call imports Evidently
    return {"samples": sum(len(s) for s in sets), "models": 2, "reference_models": DEFAULT_K,
            "batch_size": DEFAULT_BATCH_SIZE, "bare_forward_s": bare_s, "evaluation_s": whole_s,
            "evaluation_timing_s": metrics[-1]["timing_s"], "ratio": bare_s / whole_s}


def scaling(model: nn.Module, train: SampleSet, *, sizes: tuple[int, ...], batch_size: int, shards: int,
            device: torch.device) -> dict[str, Any]:
    """D-pass time against |D| with a least-squares line; the largest |D| cut into K shards as the
    `importances` pipeline cuts it (`shard_range`), merged, against one pass (equal to float rounding)."""
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(1))
    sizes = tuple(n for n in sizes if n <= len(train))
    d_pass(model, train.subset(order[:batch_size]), batch_size, device)  # warm-up: kernels, allocator
    points, largest = [], None
    for n in sizes:
        part = train.subset(order[:n].sort().values)
        importances, seconds = d_pass(model, part, batch_size, device)
        points.append({"samples": n, "seconds": seconds, "samples_per_s": n / seconds})
        largest = (part, importances)
    x = np.array([p["samples"] for p in points], dtype=float)
    y = np.array([p["seconds"] for p in points], dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    predicted = slope * x + intercept
    r2 = 1.0 - float(((y - predicted) ** 2).sum()) / max(float(((y - y.mean()) ** 2).sum()), 1e-12)
    fit = {"seconds_per_1000_samples": slope * 1000, "intercept_s": intercept, "r2": r2,
           "max_relative_residual": float(np.max(np.abs(y - predicted) / y))}

    part, one_pass = largest
    k = min(shards, -(-len(part) // batch_size))
    passes = [d_pass(model, part.subset(torch.arange(*shard_range(len(part), batch_size, index, k))),
                     batch_size, device) for index in plan_shards(k)]
    shard_results, shard_seconds = [p[0] for p in passes], [p[1] for p in passes]
    merged, merge_seconds = timed(lambda: Importances.merge(shard_results), device)
    abs_diff = max(float((merged[n].double() - one_pass[n].double()).abs().max()) for n in one_pass)
    scale = max(float(one_pass[n].double().abs().max()) for n in one_pass)
    return {"points": points, "fit": fit, "shards": {
        "samples": len(part), "k": k, "batch_size": batch_size, "shard_seconds": shard_seconds,
        "merge_seconds": merge_seconds, "one_pass_seconds": points[-1]["seconds"],
        "parallel_seconds_ideal": max(shard_seconds) + merge_seconds,
        "num_batches": {"merged": merged.num_batches, "one_pass": one_pass.num_batches},
        "max_abs_diff": abs_diff, "max_rel_diff": abs_diff / max(scale, 1e-30), "allclose_rtol_1e-5": all(
            torch.allclose(merged[n], one_pass[n], rtol=1e-5, atol=1e-12 * scale) for n in one_pass)}}


def pipeline_overhead(model: nn.Module, train: SampleSet, recipe: dict[str, Any],
                      subjects: int) -> dict[str, Any]:
    """The scheduled pipeline through kfp.local against its steps called directly, on this model saved as
    `lethe train` saves one (`python -m benchmarks.measure overhead`)."""
    with tempfile.TemporaryDirectory(prefix="lethe-bench-pipeline-") as tmp:
        card = save_model(model.cpu(), tmp, {  # the card `lethe train` writes
            "dataset": train.name, "normalization": train.normalization, "image_size": list(train.image_size),
            "classes": list(train.classes) if train.classes else None,
            "dataset_fingerprint": train.fingerprint(), "trained_on_fingerprint": train.fingerprint()})
        (Path(tmp) / "train.json").write_text(json.dumps(
            {"model": recipe["arch"], "dataset": train.name, "epochs": recipe["epochs"],
             "batch_size": recipe["batch_size"], "lr": recipe["lr"], "fingerprint": card.fingerprint}))
        try:
            result = measure_overhead(tmp, subjects)
        except (LetheError, SystemExit, OSError, subprocess.CalledProcessError) as exc:
            return {"ratio": None, "skipped": f"the measurement failed: {exc}"}
    result.pop("model", None)  # a temporary folder of this machine: nothing to publish
    return {**result, "ratio": result["kfp_local_s"] / result["direct_s"]}


def measure(profile: Profile, model: nn.Module, train: SampleSet, test: SampleSet, device: torch.device, *,
            retrain_s: float, recipe: dict[str, Any], pipeline: bool) -> dict[str, Any]:
    """Every speed part on `model` (trained with `recipe` on `train`; retraining it costs `retrain_s`)."""
    result: dict[str, Any] = {"arch": recipe["arch"], "recipe": recipe}
    shape = (train.in_channels, *train.image_size)
    with section("speed: importance pass vs bare forward+backward"):
        result["importance_overhead"] = engine_speed.importance_overhead(
            recipe["arch"], shape, profile.overhead_batches, profile.overhead_batch_size,
            profile.overhead_repeats, device)
    with section("speed: per-sample pass vs bare batched forward+backward"):
        result["per_sample"] = per_sample_ratio(
            model, train.subset(torch.arange(min(profile.per_sample_samples, len(train)))),
            batch_size=profile.overhead_batch_size, device=device)
    with section("speed: the request (D cached, ASSD α and the default selection)"):
        request, candidate, forget_request = request_costs(
            model, train, test, size=profile.request_size, batch_size=profile.importance_batch_size,
            repeats=profile.latency_repeats, device=device)
    result["request"] = request
    result["retrain"] = {"recipe": recipe, "retrain_samples": len(train) - request["forget_samples"],
                         "retrain_s": retrain_s, "ratio": retrain_s / request["default_request_s"]}
    with section("speed: evaluation against bare forward passes"):
        result["evaluation"] = eval_efficiency(model, candidate, forget_request, repeats=profile.eval_repeats,
                                               device=device)
    with section("speed: D-pass scaling and merged shards"):
        result["scaling"] = scaling(model, train, sizes=profile.scaling_sizes, shards=profile.shards,
                                    batch_size=profile.importance_batch_size, device=device)
    with section("speed: scale on paper (ResNet50, ImageNet-sized images)"):
        result["scale"] = engine_speed.scale_on_paper(
            images=profile.scale_images, image_size=profile.scale_image_size,
            request_size=profile.request_size, request_to_limit=request["request_to_limit"], device=device)
    result["dampen"] = engine_speed.dampen_speed(profile.overhead_repeats, device)
    if pipeline:
        with section("speed: the scheduled pipeline through kfp.local vs its steps called directly"):
            result["pipeline"] = pipeline_overhead(model, train, recipe, subjects=10)
    else:
        result["pipeline"] = {"ratio": None, "skipped": "measured by the full run on the demo's data only"}
    result["headline"] = {
        "importance_overhead_ratio": result["importance_overhead"]["ratio"],
        "per_sample_ratio": result["per_sample"]["ratio"], "cached_speedup": request["cached_speedup"],
        "request_to_limit": request["request_to_limit"], "retrain_speedup": result["retrain"]["ratio"],
        "eval_efficiency": result["evaluation"]["ratio"], "pipeline_overhead": result["pipeline"]["ratio"]}
    # From the gate's decision to the settled requests, in the kfp.local run (a measure, not a ratio).
    result["settle_seconds"] = result["pipeline"].get("settle_seconds")
    result["targets"] = check_targets(result["headline"], device.type)
    return result


def synthetic(count: int, shape: tuple[int, int, int], classes: int, *, seed: int, split: str) -> SampleSet:
    """Random images with random labels (speed only)."""
    generator = torch.Generator().manual_seed(seed)
    return SampleSet(name="synthetic", split=split, ids=[f"synthetic/{split}/{i}" for i in range(count)],
                     inputs=torch.randint(0, 256, (count, *shape), dtype=torch.uint8, generator=generator),
                     labels=torch.randint(0, classes, (count,), generator=generator), num_classes=classes,
                     normalization=Normalization.uniform(shape[0]))


def main(argv: list[str] | None = None) -> int:
    parser = engine_speed.speed_parser(__doc__, default_device())
    parser.add_argument("--train-samples", type=int, default=50_000, help="|D| (default CIFAR-10's 50,000)")
    parser.add_argument("--epochs", type=int, default=3, help="the model's recipe (default the demo's 3)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    n = 256 if args.quick else args.train_samples
    profile = replace(QUICK if args.quick else FULL, arch=args.arch, scaling_sizes=(n // 4, n // 2, n),
                      request_size=8 if args.quick else FULL.request_size,
                      per_sample_samples=64 if args.quick else FULL.per_sample_samples,
                      overhead_batch_size=16 if args.quick else FULL.overhead_batch_size,
                      scale_images=1 if args.quick else 32, scale_image_size=64 if args.quick else 224)
    shape = (3, 32, 32)
    train = synthetic(n, shape, 10, seed=0, split="train")
    test = synthetic(max(n // 5, 256), shape, 10, seed=1, split="test")  # ≥ 100 to calibrate at 1% FPR
    torch.manual_seed(0)
    model = build_model(args.arch, num_classes=10, in_channels=shape[0])
    recipe = {"arch": args.arch, "epochs": 1 if args.quick else args.epochs, "batch_size": 128, "lr": 3e-3}
    trained = train_classifier(model, train, None, epochs=recipe["epochs"], device=device, progress=False)
    model.eval()
    result = {"machine": machine(device), "date": now(), "data": "synthetic uint8 images (speed only)",
              "command": command_line("-m benchmarks.speed", argv if argv is not None else sys.argv[1:])}
    # Retraining without the request's samples: the recipe's measured time, linear in the samples.
    retrain_s = trained.seconds * (n - profile.request_size) / n
    result.update(measure(profile, model, train, test, device, retrain_s=retrain_s,
                          recipe={**recipe, "train_seconds": trained.seconds}, pipeline=False))
    result.update(result["headline"])
    write_headline(args.out or engine_speed.RESULTS / f"speed-{device.type}.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
