"""The `unlearn` step: selective dampening (LFSSD by default) on a forget request, α chosen per request.

Loads the parent model, resolves the forget set, takes the full-data importances (given, or
computed once and saved beside the result), computes the forget importances with the same method
and batch size, chooses α (a number, the ASSD rule, or a search for the least dampening that meets the
scenario's forgetting target), dampens, and writes a model directory plus `dampening.json`.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lethe.devices import default_device
from lethe.errors import ConfigError, ImportancesError
from lethe.evaluation import ClassTarget, ForgettingTarget, SubjectTarget
from lethe.evaluation.evaluator import DEFAULT_BATCH_SIZE as FORWARD_BATCH_SIZE
from lethe.models import load_model, save_model
from lethe.steps.alpha import parse_alpha
from lethe.steps.evaluate import Request, resolve_request
from lethe.steps.importance_pass import DEFAULT_IMPORTANCE_BATCH_SIZE, importances_of
from lethe.steps.layout import DAMPENING_FILE
from lethe.steps.results import UnlearnResult
from lethe.storage import sha256_file
from lethe.unlearning import DEFAULT_METHOD, Importances, calibrate_alpha, dampen, get_method, search_alpha

log = logging.getLogger(__name__)

DAMPENING_FORMAT = "lethe-dampening/1"
FULL_IMPORTANCES_FILE = "importances-full.safetensors"
#: α search interval and bisection steps: 12 halvings of ln(1000) pin the transition to a factor 1.002.
SEARCH_LOW, SEARCH_HIGH, SEARCH_STEPS = 1.0, 1000.0, 12
#: Fixed samples the forgetting target runs forward passes over on every α trial.
TARGET_SAMPLE_SIZE = 2000


def _local_importances(uri: str | Path, out: Path) -> Path:
    """A local safetensors file for `uri`: a file, a directory holding one, or an s3:// object."""
    text = str(uri)
    if text.startswith("s3://"):
        from lethe.storage import get_file

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
    return path


def _full_importances(model: nn.Module, request: Request, importances: str | Path | None,
                      batch_size: int | None, method: str | None, out: Path, device: str,
                      progress: bool) -> tuple[Importances, dict[str, Any]]:
    """The full-data importances; their method (given ones carry it) is the one the forget pass uses."""
    if importances is not None:
        path = _local_importances(importances, out)
        full = Importances.load(path)
        if batch_size is not None and batch_size != full.batch_size:
            raise ImportancesError(f"the full-data importances were computed with batch size "
                                   f"{full.batch_size}, not {batch_size}: the forget pass must use the same")
        if method is not None and method != full.method:
            raise ImportancesError(f"the full-data importances are {full.method} ones, not {method}: "
                                   "the forget pass must use the same method")
        computed = False
    else:
        full = importances_of(model, request.train, batch_size=batch_size or DEFAULT_IMPORTANCE_BATCH_SIZE,
                              method=method or DEFAULT_METHOD, device=device, progress=progress)
        path = full.save(out / FULL_IMPORTANCES_FILE)
        computed = True
    if full.num_samples != len(request.train):
        raise ImportancesError(f"the full-data importances cover {full.num_samples} samples but "
                               f"{request.dataset}/train has {len(request.train)}: they belong to other data")
    info = {"path": str(path) if not computed else path.name, "sha256": sha256_file(path),
            "computed": computed, **full.metadata}
    return full, info


def _fixed_sample(samples: Any, size: int, seed: int) -> Any:
    if len(samples) <= size:
        return samples
    generator = torch.Generator().manual_seed(seed)
    return samples.subset(torch.randperm(len(samples), generator=generator)[:size].sort().values)


def make_target(model: nn.Module, request: Request, *, device: str, seed: int = 0,
                sample_size: int = TARGET_SAMPLE_SIZE) -> ForgettingTarget:
    """The scenario's forgetting target over fixed retain (and held-out) samples; forward passes only."""
    def batches(samples: Any) -> Any:
        return samples.batches(FORWARD_BATCH_SIZE, with_labels=False)

    forget = batches(request.split.forget)
    retain = batches(_fixed_sample(request.split.retain, sample_size, seed))
    if request.scenario == "class":
        return ClassTarget(model, forget, retain, device=device)
    held_out = batches(_fixed_sample(request.test, sample_size, seed + 1))
    return SubjectTarget(model, forget, retain, held_out, seed=seed, device=device)


def unlearn(
    model_path: str | Path,
    dataset: str | None = None,
    *,
    forget_ids: Sequence[str] = (),
    forget_subjects: Sequence[str] = (),
    forget_class: int | None = None,
    scenario: str | None = None,
    alpha: str | float = "search",
    lam: float = 1.0,
    importances: str | Path | None = None,
    batch_size: int | None = None,
    method: str | None = None,
    out_dir: str | Path,
    device: str | None = None,
    progress: bool = True,
    subjects_file: str | Path | None = None,
    seed: int = 0,
    data_dir: str | None = None,
) -> UnlearnResult:
    """Forget the request's samples from the model at `model_path`; write the result to `out_dir`.

    `alpha`: a number, `assd` (the ASSD percentile rule) or `search` (the largest α whose
    dampened model meets the scenario's target; see `lethe.evaluation.targets`). `importances`:
    the full-data importances (file, directory or s3:// URI); computed and saved into
    `out_dir` when absent. `batch_size` and `method` (a registered importance method): of the
    importance passes (default: the given importances', else 1 = per sample and LFSSD); a value
    that disagrees with the given importances is refused. Returns the α chosen, what it cost and the
    dampening.json record.
    """
    started = time.perf_counter()
    choice = parse_alpha(alpha)
    if method is not None:
        method = get_method(method).name  # an unknown name is refused before anything is loaded
    if not lam > 0:
        raise ConfigError(f"lambda must be positive, not {lam}")
    device = device or default_device()
    model, card = load_model(model_path)
    request = resolve_request(dataset, card, forget_ids=forget_ids, forget_subjects=forget_subjects,
                              forget_class=forget_class, scenario=scenario, subjects_file=subjects_file,
                              data_dir=data_dir)
    out = Path(out_dir)  # created by the first file written: refused input leaves nothing behind

    full, importances_info = _full_importances(model, request, importances, batch_size, method, out, device,
                                               progress)
    forget = importances_of(model, request.split.forget, batch_size=full.batch_size, method=full.method,
                            device=device, progress=progress)
    assd = calibrate_alpha(full, forget, n_full=len(request.train), n_forget=len(request.split.forget))
    target = make_target(model, request, device=device, seed=seed)

    search: dict[str, Any] | None = None
    if choice == "search":
        high = SEARCH_HIGH
        if request.scenario == "subject":
            # A subject's few samples can already look unseen, and the target is then met with no
            # change at all. Never do less than ASSD's rule, so the candidate always changes
            # (DESIGN: never serve a model that forgot nothing); search below it when needed.
            high = min(SEARCH_HIGH, assd)
        low = min(SEARCH_LOW, high / 2)
        result = search_alpha(model, full, forget, target, lam=lam, low=low, high=high, steps=SEARCH_STEPS)
        search = {"low": low, "high": high, "steps": SEARCH_STEPS, "found": result.found,
                  "trials": [{"alpha": t.alpha, "meets_target": t.meets_target,
                              "fraction_dampened": t.fraction_dampened, **m.to_dict()}
                             for t, m in zip(result.trials, target.measurements, strict=True)]}
        if not result.found:
            log.warning("no α in [%g, %g] meets the %s target; using α=%g (the most dampening tried)",
                        low, high, request.scenario, low)
        chosen = result.alpha if result.found else low
    else:
        chosen = assd if choice == "assd" else float(choice)

    candidate = copy.deepcopy(model)
    report = dampen(candidate, full, forget, alpha=chosen, lam=lam)
    final = target.measure(candidate)  # what the chosen α costs, measured like every trial
    card_fields = {
        "dataset": request.dataset, "normalization": card.normalization, "classes": card.classes,
        "image_size": card.image_size, "parent_fingerprint": card.fingerprint,
        "unlearning": {"method": full.method, "alpha": chosen, "lam": lam, "alpha_method": _method(choice),
                       "scenario": request.scenario, "forget_size": len(request.split.forget)},
    }
    saved = save_model(candidate, out, {k: v for k, v in card_fields.items() if v is not None})

    dampening = {
        "format": DAMPENING_FORMAT,
        "method": full.method,
        **report.to_dict(),
        "alpha_method": _method(choice),
        "alpha_assd": assd,
        "target": {"scenario": request.scenario, **final.to_dict()},
        "target_met": final.met,
        "search": search,
        "scenario": request.scenario,
        "forget_class": request.forget_class,
        "dataset": request.dataset,
        "forget_size": len(request.split.forget),
        "retain_size": len(request.split.retain),
        "importances": importances_info,
        "forget_importances": forget.metadata,
        "parent_fingerprint": card.fingerprint,
        "candidate_fingerprint": saved.fingerprint,
        "seconds": round(time.perf_counter() - started, 3),
    }
    (out / DAMPENING_FILE).write_text(json.dumps(dampening, indent=2) + "\n")
    return UnlearnResult(
        out_dir=out, scenario=request.scenario, method=full.method, alpha=chosen, lam=lam,
        alpha_method=_method(choice), target_met=final.met, forget_agreement=final.forget_agreement,
        retain_agreement=final.retain_agreement, total_selected=report.total_selected,
        fraction_dampened=report.fraction, forget_size=len(request.split.forget),
        target=dampening["target"], importances=importances_info, dampening=dampening)


def _method(choice: str | float) -> str:
    return choice if isinstance(choice, str) else "given"
