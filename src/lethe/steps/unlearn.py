"""The `unlearn` step: selective dampening (LFSSD by default) on a forget request, α chosen per request.

Loads the parent model, resolves the forget set, takes the full-data importances (given, or
computed once and saved beside the result), computes the forget importances with the same method
and batch size, chooses α (a number, the ASSD rule, or a search for the least dampening that meets the
scenario's forgetting target), dampens, and writes a model directory plus `dampening.json`.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lethe.devices import default_device
from lethe.errors import ConfigError, ImportancesError
from lethe.evaluation.evaluator import DEFAULT_BATCH_SIZE as FORWARD_BATCH_SIZE
from lethe.evaluation.targets import TARGETS, ForgettingTarget
from lethe.evaluation.thresholds import Thresholds, load_thresholds
from lethe.forgetting.alpha import AlphaMethod, AlphaStrategy, alpha_method, parse_alpha
from lethe.forgetting.resolved import ResolvedForgetSet
from lethe.forgetting.scenarios import scenario as scenario_row
from lethe.models import load_model, save_model
from lethe.models.stages import forward_stages
from lethe.steps.cache import ImportancesCache
from lethe.steps.dampening_record import DampeningRecord
from lethe.steps.forget_set import load_forget_set
from lethe.steps.full_importances import verified_importances
from lethe.steps.importance_pass import DEFAULT_IMPORTANCE_BATCH_SIZE, PER_SAMPLE, importances_of
from lethe.steps.ladder import ROOT_RECIPE_KEY, recipe_size
from lethe.steps.layout import DAMPENING_FILE
from lethe.steps.results import UnlearnResult
from lethe.storage import get_file, seal_local_file, sha256_file, uri_scheme
from lethe.unlearning import DEFAULT_METHOD, Importances, calibrate_alpha, dampen, get_method
from lethe.unlearning.selection import EVERY_LAYER, cutoff_names, eligible_parameters, select_dampening

log = logging.getLogger(__name__)

FULL_IMPORTANCES_FILE = "importances-full.safetensors"
#: α search interval, and how closely bisection pins the transition: within a factor 1.005 (0.5%),
#: at most 12 halvings (ln 1000 in 11). A cut-off's trials cost a forward pass each, so precision
#: nobody can see in the result is not bought (measured: α within 0.5% changes no metric's 3rd digit).
SEARCH_LOW, SEARCH_HIGH, SEARCH_PRECISION, SEARCH_STEPS = 1.0, 1000.0, 1.005, 12
#: `cutoff` value that searches where dampening may act (every layer, or from a stage on).
CUTOFF_SEARCH = "search"
#: Fixed samples the forgetting target runs forward passes over on every α trial.
TARGET_SAMPLE_SIZE = 2000


def _local_importances(uri: str | Path, out: Path) -> Path:
    """A local safetensors file for `uri`: a file, a directory holding one, or a storage URI
    (any scheme lethe.storage serves, read and checked against its sidecar)."""
    text = str(uri)
    if uri_scheme(text):
        return get_file(text, out / FULL_IMPORTANCES_FILE)
    path = Path(text)
    if path.is_dir():
        candidates = sorted(path.glob("*.safetensors"))
        if len(candidates) != 1:
            raise ImportancesError(f"{path} holds {len(candidates)} safetensors files; "
                                   "name the importances file")
        path = candidates[0]
    if not path.is_file():
        raise ImportancesError(f"no importances file at {path}")
    return verified_importances(path)  # local files are verified like stored ones


def _given_importances(importances: str | Path, batch_size: int | None, method: str | None,
                       out: Path) -> tuple[Importances, Path]:
    path = _local_importances(importances, out)
    full = Importances.load(path)
    if batch_size is not None and batch_size != full.batch_size:
        raise ImportancesError(f"the full-data importances were computed with batch size "
                               f"{full.batch_size}, not {batch_size}: the forget pass must use the same")
    if method is not None and method != full.method:
        raise ImportancesError(f"the full-data importances are {full.method} ones, not {method}: "
                               "the forget pass must use the same method")
    return full, path


def _full_importances(model: nn.Module, forget_set: ResolvedForgetSet, importances: str | Path | None,
                      batch_size: int | None, method: str | None, out: Path, device: str,
                      progress: bool, cache_root: str | None = None,
                      model_fingerprint: str = "") -> tuple[Importances, dict[str, Any]]:
    """The full-data importances; their method (given ones carry it) is the one the forget pass uses.

    Not given: read from the ImportancesCache under `cache_root` (as the pipelines' importances step
    does), else computed and stored there (and, in any case, saved into `out`)."""
    if importances is not None:
        full, path = _given_importances(importances, batch_size, method, out)
        computed, cache_uri = False, None
    else:
        key = {"model_fingerprint": model_fingerprint, "dataset_fingerprint": forget_set.train.fingerprint(),
               "method": method or DEFAULT_METHOD, "batch_size": batch_size or DEFAULT_IMPORTANCE_BATCH_SIZE}
        cache = ImportancesCache(cache_root) if cache_root is not None else None
        found = cache.get(**key) if cache is not None else None
        computed = found is None
        full = found if found is not None else importances_of(
            model, forget_set.train, batch_size=key["batch_size"], method=key["method"], device=device,
            progress=progress)
        cache_uri = cache.uri_for(**key) if cache is not None else None
        if cache is not None and computed:
            cache.put(full, dataset_fingerprint=key["dataset_fingerprint"])
        path = full.save(out / FULL_IMPORTANCES_FILE)
        seal_local_file(path)  # a later `--importances` of this file is verified against it
    if full.num_samples != len(forget_set.train):
        train = f"{forget_set.dataset}/train"
        raise ImportancesError(f"the full-data importances cover {full.num_samples} samples but {train} has "
                               f"{len(forget_set.train)}: they belong to other data")
    info = {"path": path.name if importances is None else str(path), "sha256": sha256_file(path),
            "computed": computed, **({"cache_uri": cache_uri} if cache_uri else {}), **full.metadata}
    return full, info


def _fixed_sample(samples: Any, size: int, seed: int) -> Any:
    if len(samples) <= size:
        return samples
    generator = torch.Generator().manual_seed(seed)
    return samples.subset(torch.randperm(len(samples), generator=generator)[:size].sort().values)


def make_target(model: nn.Module, forget_set: ResolvedForgetSet, *, device: str, seed: int = 0,
                sample_size: int = TARGET_SAMPLE_SIZE,
                thresholds: Thresholds | None = None) -> ForgettingTarget:
    """The scenario's forgetting target over fixed retain (and held-out) samples; forward passes only.

    Its limit is the gate's (one set of limits: `--thresholds` tightens the search and the gate together)."""
    thresholds = thresholds or load_thresholds()
    row = forget_set.row
    target = TARGETS[row.target]

    def batches(samples: Any) -> Any:
        return samples.batches(FORWARD_BATCH_SIZE, with_labels=False)

    held_out = None
    if "held_out" in target.inputs:  # only a target that compares with unseen data draws that sample
        held_out = batches(_fixed_sample(forget_set.test, sample_size, seed + 1))
    return target.for_scenario(
        model, forget=batches(forget_set.split.forget),
        retain=batches(_fixed_sample(forget_set.split.retain, sample_size, seed)), held_out=held_out,
        forget_class=forget_set.forget_class, limit=thresholds.limit(target.gate_check, row.thresholds),
        seed=seed, device=device)


@dataclass(frozen=True)
class DampeningChoice:
    """Where dampening acts and how much: what `choose_dampening` decided, and how."""

    alpha: float
    cutoff: str  # `all` (every layer) or the first stage dampening may touch
    parameters: tuple[str, ...] | None  # None: every parameter
    alpha_method: AlphaMethod
    alpha_assd: float
    selection: dict[str, Any] | None  # every trial and the search's bounds; None when nothing was tried


def search_bounds(full: Importances, *, n_full: int, n_forget: int, scenario: str,
                  alpha_assd: float) -> tuple[float, float]:
    """The α interval to bisect. With per-sample importances I_f/I_D ≤ N/N_f exactly (sums over samples),
    so nothing is selected at α ≥ N/N_f: searching above it only tries the unchanged model."""
    high = SEARCH_HIGH
    if full.batch_size == PER_SAMPLE:
        high = min(high, n_full / n_forget)
    if scenario_row(scenario).alpha_at_most_assd:
        # A subject's few samples can already look unseen, and the target is then met with no
        # change at all. Never do less than ASSD's rule, so the candidate always changes
        # (DESIGN: never serve a model that forgot nothing); search below it when needed.
        high = min(high, alpha_assd)
    return min(SEARCH_LOW, high / 2), high


def search_steps(low: float, high: float) -> int:
    """Bisection steps that pin α within SEARCH_PRECISION on [low, high] (at most SEARCH_STEPS)."""
    halvings = math.log(high / low) / math.log(SEARCH_PRECISION)
    return max(1, min(SEARCH_STEPS, math.ceil(math.log2(max(halvings, 1.0)))))


def choose_dampening(model: nn.Module, full: Importances, forget: Importances, forget_set: ResolvedForgetSet,
                     target: ForgettingTarget, *, alpha: AlphaStrategy | float = "search",
                     cutoff: str | None = None, lam: float = 1.0) -> DampeningChoice:
    """The one selection rule of the product (the unlearn step, the CLI, the pipelines and the benchmarks).

    `alpha`: `search` (bisect for the largest α that meets `target`), `assd` or a number. `cutoff`:
    `search` (try every layer and each stage boundary, keep the candidate that meets the target with
    the highest retained agreement), `all`, or a stage name; default `search` when α is searched for a
    scenario whose row searches cut-offs (a class), else `all` (subjects, and a fixed α: every layer,
    as published). Forward passes only.
    """
    choice = parse_alpha(alpha)
    # Cut-offs are searched for classes. A subject's samples often already look unseen, so every
    # cut-off meets the target at once and the least change wins: the output layer alone, a few
    # elements (measured: 14 of 120k on 100 Fashion-MNIST samples), which undoes the floor at ASSD's α
    # on every layer below. Subjects keep that floor; their evidence is per example (references).
    searched = choice == "search" and forget_set.row.searches_cutoff
    cutoff = cutoff or (CUTOFF_SEARCH if searched else EVERY_LAYER)
    n_full, n_forget = len(forget_set.train), len(forget_set.split.forget)
    assd = calibrate_alpha(full, forget, n_full=n_full, n_forget=n_forget)
    fixed = None if choice == "search" else (assd if choice == "assd" else float(choice))
    if fixed is not None and cutoff != CUTOFF_SEARCH:
        # Nothing to try: a given configuration (checked against the model's stages when dampening).
        parameters = None if cutoff == EVERY_LAYER else _stage_parameters(model, cutoff)
        return DampeningChoice(fixed, cutoff, parameters, alpha_method(choice), assd, None)
    low, high = search_bounds(full, n_full=n_full, n_forget=n_forget, scenario=forget_set.scenario,
                              alpha_assd=assd)
    cutoffs = None if cutoff == CUTOFF_SEARCH else [cutoff]
    steps = search_steps(low, high)
    selection = select_dampening(model, full, forget, target, stages=forward_stages, cutoffs=cutoffs,
                                 alpha=fixed, lam=lam, low=low, high=high, steps=steps)
    record = {"found": selection.found, "cutoff": selection.cutoff, "alpha": selection.alpha,
              "cutoffs": list(selection.cutoffs), "low": low, "high": high, "steps": steps,
              "criterion": target.criterion, "limit": target.limit,
              "trials": [trial.to_dict() for trial in selection.trials],
              "forward_trials": selection.forward_trials}
    if selection.found:
        parameters = None if selection.cutoff == EVERY_LAYER else selection.parameters
        return DampeningChoice(float(selection.alpha), str(selection.cutoff), parameters,
                               alpha_method(choice), assd, record)
    fallback = fixed if fixed is not None else low
    log.warning("no configuration meets the %s target (α in [%g, %g], cut-offs %s); dampening every "
                "layer at α=%g (the most dampening tried)", forget_set.scenario, low, high,
                ", ".join(selection.cutoffs), fallback)
    return DampeningChoice(fallback, EVERY_LAYER, None, alpha_method(choice), assd, record)


def _stage_parameters(model: nn.Module, cutoff: str) -> tuple[str, ...]:
    """The parameters from stage `cutoff` on (a cut-off of `cutoff_names`, not `all`)."""
    stages = forward_stages(model)
    names = cutoff_names(stages)
    if cutoff not in names[1:]:
        raise ConfigError(f"unknown cut-off {cutoff!r}; this model has {', '.join([CUTOFF_SEARCH, *names])}")
    return tuple(eligible_parameters(model, [module for _, module in stages[names.index(cutoff):]]))


def unlearn(
    model_path: str | Path,
    dataset: str | None = None,
    *,
    forget_ids: Sequence[str] = (),
    forget_subjects: Sequence[str] = (),
    forget_class: int | None = None,
    scenario: str | None = None,
    alpha: AlphaStrategy | float = "search",
    cutoff: str | None = None,
    lam: float = 1.0,
    thresholds: str | Path | Thresholds | None = None,
    importances: str | Path | None = None,
    batch_size: int | None = None,
    method: str | None = None,
    out_dir: str | Path,
    device: str | None = None,
    progress: bool = True,
    subjects_file: str | Path | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    cache_root: str | None = None,
) -> UnlearnResult:
    """Forget the request's samples from the model at `model_path`; write the result to `out_dir`.

    `alpha`: a number, `assd` (the ASSD percentile rule) or `search` (the largest α whose
    dampened model meets the scenario's target; see `lethe.evaluation.targets`); `cutoff`: where
    dampening may act (see `choose_dampening`); `thresholds`: the gate's (see `load_thresholds`),
    whose limits are the search's targets too. `importances`:
    the full-data importances (file, directory or storage URI); computed and saved into
    `out_dir` when absent. `batch_size` and `method` (a registered importance method): of the
    importance passes (default: the given importances', else 1 = per sample and LFSSD); a value
    that disagrees with the given importances is refused. `cache_root`: an ImportancesCache root
    (e.g. LETHE_ARTIFACTS, as `lethe unlearn` passes): without given importances, they are read from it
    when there and stored in it when computed. The data must be the model's
    (`lethe.steps.training_data.check_model_fits`), checked before anything is computed or written.
    Returns the α chosen, what it cost and the dampening.json record (`DampeningRecord`).
    """
    started = time.perf_counter()
    choice = parse_alpha(alpha)
    thresholds = load_thresholds(thresholds)
    if method is not None:
        method = get_method(method).name  # an unknown name is refused before anything is loaded
    if not lam > 0:
        raise ConfigError(f"lambda must be positive, not {lam}")
    device = device or default_device()
    model, card = load_model(model_path)
    if cutoff not in (None, CUTOFF_SEARCH, EVERY_LAYER):
        _stage_parameters(model, cutoff)  # refused before anything is written
    forget_set = load_forget_set(dataset, card, forget_ids=forget_ids, forget_subjects=forget_subjects,
                                 forget_class=forget_class, scenario=scenario, subjects_file=subjects_file,
                                 data_dir=data_dir)
    split = forget_set.split
    out = Path(out_dir)  # created by the first file written: refused input leaves nothing behind

    full, importances_info = _full_importances(model, forget_set, importances, batch_size, method, out,
                                               device, progress, cache_root, card.fingerprint)
    forget = importances_of(model, split.forget, batch_size=full.batch_size, method=full.method,
                            device=device, progress=progress)
    target = make_target(model, forget_set, device=device, seed=seed, thresholds=thresholds)
    chosen = choose_dampening(model, full, forget, forget_set, target, alpha=choice, cutoff=cutoff, lam=lam)

    candidate = copy.deepcopy(model)
    report = dampen(candidate, full, forget, alpha=chosen.alpha, lam=lam, parameters=chosen.parameters)
    final = target.measure(candidate)  # what the chosen configuration costs, measured like every trial
    card_fields = {
        "dataset": forget_set.dataset, "dataset_fingerprint": forget_set.train.fingerprint(),
        "normalization": card.normalization, "classes": card.classes,
        "image_size": card.image_size or list(forget_set.train.image_size),
        "parent_fingerprint": card.fingerprint,
        # The version whose recipe (train.json) and reference models every descendant shares.
        "root_fingerprint": card.extra.get("root_fingerprint") or card.fingerprint,
        # The root recipe's size, which a repair's budget is a share of (lethe.steps.ladder.recipe_size).
        ROOT_RECIPE_KEY: recipe_size(card, len(forget_set.train)),
        "unlearning": {"method": full.method, "alpha": chosen.alpha, "cutoff": chosen.cutoff, "lam": lam,
                       "alpha_method": chosen.alpha_method, "scenario": forget_set.scenario,
                       "forget_size": len(split.forget)},
    }
    saved = save_model(candidate, out, {k: v for k, v in card_fields.items() if v is not None})

    record = DampeningRecord(
        method=full.method,
        **report.to_dict(),
        alpha_method=chosen.alpha_method,
        alpha_assd=chosen.alpha_assd,
        cutoff=chosen.cutoff,
        dampened_parameters=list(chosen.parameters) if chosen.parameters is not None else None,
        target={"scenario": forget_set.scenario, **final.to_dict()},
        target_met=final.met,
        selection=chosen.selection,
        scenario=forget_set.scenario,
        forget_class=forget_set.forget_class,
        dataset=forget_set.dataset,
        forget_size=len(split.forget),
        retain_size=len(split.retain),
        importances=importances_info,
        forget_importances=forget.metadata,
        parent_fingerprint=card.fingerprint,
        candidate_fingerprint=saved.fingerprint,
        seconds=round(time.perf_counter() - started, 3),
    )
    record.write(out / DAMPENING_FILE)
    dampening = record.to_fields()
    return UnlearnResult(
        out_dir=out, scenario=forget_set.scenario, method=full.method, alpha=chosen.alpha,
        cutoff=chosen.cutoff, lam=lam, alpha_method=chosen.alpha_method, target_met=final.met,
        forget_agreement=final.forget_agreement,
        retain_agreement=final.retain_agreement, total_selected=report.total_selected,
        fraction_dampened=report.fraction, forget_size=len(split.forget),
        target=dampening["target"], importances=importances_info, dampening=dampening)

