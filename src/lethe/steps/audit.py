"""Reference-model steps: find a version's recipe through its lineage, gather what it must forget, plan
the reference models, train one, assemble the set. The `reference-models` pipeline and `lethe audit`
call these; `lethe.steps.retrain` shares the lineage part.

A version named in the registry is followed to its root (the ancestor whose fingerprint its card
records as `root_fingerprint`); the root's train.json is the recipe. What a version must forget is
what the registry and the ledger record: its cumulative request ids, each resolved by the ledger to
sample ids (through the subject map when a request names only its subject), and the classes of
class-scenario ancestors.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lethe.audit import ReferencePlan, ReferenceSet, root_fingerprint
from lethe.audit.plan import DEFAULT_K, plan_references
from lethe.audit.training import assemble_references, stored_references, train_reference
from lethe.errors import AuditError
from lethe.models import read_card
from lethe.registry.fetch import FetchedModel, fetch_model
from lethe.registry.tags import MODEL_FINGERPRINT_TAG, REMEDY_TAG, SCENARIO_TAG

log = logging.getLogger(__name__)

#: What the retrain step writes beside a retrained model: counts and classes only, never sample ids.
RETRAIN_FILE = "retrain.json"
_MAX_LINEAGE = 10_000


@dataclass
class AuditedModel:
    """A model version fetched for auditing: its directory, where it came from, its lineage and recipe."""

    model_dir: Path
    fetched: FetchedModel
    lineage: list[Any] = field(default_factory=list)  # registry VersionInfo, the version first, root last
    recipe: dict[str, Any] | None = None  # the root version's train.json, when the registry has it

    @property
    def root_fingerprint(self) -> str:
        return root_fingerprint(read_card(self.model_dir))


def _registry(fetched: FetchedModel, tracking_uri: str | None) -> Any:
    from lethe.registry import Registry

    return Registry(tracking_uri, fetched.name)


def fetch_audited_model(model: str, dest_dir: str | Path, *, tracking_uri: str | None = None,
                        model_name: str | None = None) -> AuditedModel:
    """Fetch `model` (registry reference or model directory) and, for a registered version, its lineage
    up to its root and the root's recipe."""
    fetched = fetch_model(model, dest_dir, tracking_uri=tracking_uri, model_name=model_name)
    audited = AuditedModel(Path(dest_dir), fetched)
    if fetched.source != "registry":
        return audited
    registry = _registry(fetched, tracking_uri)
    root = root_fingerprint(read_card(dest_dir))
    info = registry.version(fetched.version)
    audited.lineage.append(info)
    while info.tags.get(MODEL_FINGERPRINT_TAG) != root and info.parent_version:
        if len(audited.lineage) > _MAX_LINEAGE or info.parent_version in {v.version for v in audited.lineage}:
            raise AuditError(f"the lineage of version {fetched.version} of {fetched.name} loops")
        info = registry.version(info.parent_version)
        audited.lineage.append(info)
    if info.tags.get(MODEL_FINGERPRINT_TAG) == root:
        with tempfile.TemporaryDirectory(prefix="lethe-root-") as tmp:
            root_dir = registry.download_model(info.version, tmp)
            from lethe.audit.recipe import own_recipe

            audited.recipe = own_recipe(root_dir, read_card(root_dir))
    return audited


def _forget_classes(registry: Any, lineage: Sequence[Any]) -> list[int]:
    """Classes forgotten along the lineage: from each class-scenario (or retrained) version's files."""
    classes: list[int] = []
    for info in lineage:
        if info.tags.get(SCENARIO_TAG) != "class" and info.tags.get(REMEDY_TAG) != "retrain":
            continue
        for name, key in (("dampening.json", "forget_class"), (RETRAIN_FILE, "forget_classes")):
            with tempfile.TemporaryDirectory(prefix="lethe-lineage-") as tmp:
                try:
                    local = registry.client.download_artifacts(info.run_id, f"model/{name}", tmp)
                    value = json.loads(Path(local).read_text()).get(key)
                except Exception:  # noqa: BLE001 (absent in this version: MLflow raises several types)
                    continue
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, int) and item not in classes:
                    classes.append(item)
    return classes


@dataclass(frozen=True)
class Forgotten:
    """What a version must forget: the samples of the requests it honours, and forgotten classes."""

    sample_ids: list[str]
    request_ids: list[str]
    forget_classes: list[int]


def forgotten_by(audited: AuditedModel, train: Any, *, ledger_url: str | None = None,
                 tracking_uri: str | None = None, subject_map: str | None = None) -> Forgotten:
    """Every sample the version must forget, as the registry and the ledger record it (empty for a
    model directory outside the registry). A request the ledger cannot resolve is refused."""
    if not audited.lineage:
        return Forgotten([], [], [])
    version = audited.lineage[0]
    request_ids = list(version.request_ids)
    classes = _forget_classes(_registry(audited.fetched, tracking_uri), audited.lineage)
    samples: list[str] = []
    if request_ids:
        from lethe.ledger import Ledger
        from lethe.steps.collect import resolve_requests

        ledger = Ledger(ledger_url)
        requests = [ledger.get(request_id) for request_id in request_ids]
        hashed: dict[str, list[str]] = {}
        if any(not request.sample_ids for request in requests):
            from lethe.data import subject_map as subjects_of

            for subject, owned in subjects_of(train, subject_map).items():
                for subject_hash in ledger.subject_hashes(subject).values():
                    hashed[subject_hash] = list(dict.fromkeys([*hashed.get(subject_hash, ()), *owned]))
        resolved, failed = resolve_requests(requests, train, hashed)
        if failed:
            raise AuditError(f"{len(failed)} of the {len(request_ids)} request(s) version {version.version} "
                             "honours cannot be resolved to samples any more (subject map or data changed)")
        samples = list(dict.fromkeys(s for request_id in request_ids for s in resolved[request_id]))
    if classes:
        if train.labels is None:
            raise AuditError(f"{train.name} has no labels: the forgotten classes cannot be found")
        in_classes = [i for i, label in enumerate(train.labels.tolist()) if label in set(classes)]
        samples = list(dict.fromkeys([*samples, *(train.ids[i] for i in in_classes)]))
    return Forgotten(samples, request_ids, classes)


def root_exclusions(audited: AuditedModel, recipe: dict[str, Any], train: Any, *, ledger_url: str | None,
                    tracking_uri: str | None, subject_map: str | None) -> list[str]:
    """The samples a (retrained) root was trained without, as its lineage records them; [] for a root
    trained on everything."""
    if not int(recipe.get("excluded") or 0):
        return []
    root = [info for info in audited.lineage if info.tags.get(MODEL_FINGERPRINT_TAG) ==
            audited.root_fingerprint]
    if not root:
        raise AuditError("the root version was trained without some samples and is not in the registry: "
                         "name it as models:/NAME/VERSION so its requests can be read from the ledger")
    index = audited.lineage.index(root[0])
    at_root = AuditedModel(audited.model_dir, audited.fetched, audited.lineage[index:], recipe)
    return forgotten_by(at_root, train, ledger_url=ledger_url, tracking_uri=tracking_uri,
                        subject_map=subject_map).sample_ids


def plan_of(audited: AuditedModel, *, k: int = DEFAULT_K, seed: int = 0, epochs: int | None = None,
            recipe: str | Path | None = None, root_uri: str | None = None, tracking_uri: str | None = None,
            ledger_url: str | None = None, subject_map: str | None = None) -> ReferencePlan:
    """The reference plan of a fetched version: the recipe given, or its root's through the lineage;
    the exclusions of a retrained root from the ledger."""
    from lethe.audit.recipe import matching_recipe
    from lethe.data import load_dataset

    chosen: Any = recipe if recipe is not None else audited.recipe
    exclude: list[str] = []
    if chosen is not None:
        chosen = matching_recipe(chosen, audited.root_fingerprint)
        if int(chosen.get("excluded") or 0):
            train = load_dataset(str(chosen["dataset"]), "train")
            exclude = root_exclusions(audited, chosen, train, ledger_url=ledger_url,
                                      tracking_uri=tracking_uri, subject_map=subject_map)
    return plan_references(audited.model_dir, k=k, seed=seed, epochs=epochs, recipe=chosen,
                           exclude_ids=exclude, root_uri=root_uri, subject_map=subject_map)


@dataclass(frozen=True)
class PreparedReferences:
    """prepare_references_for: the stored set, whether it was already there, whether it replaced one."""

    references: ReferenceSet
    cached: bool
    rebuilt: bool = False

    @property
    def refusal(self) -> str | None:
        """Why the set judges no person (a per-sample set), in one line; None when it can."""
        return self.references.person_refusal

    def to_dict(self) -> dict[str, Any]:
        refs = self.references
        return {"uri": refs.uri, "k": refs.k, "cached": self.cached, "rebuilt": self.rebuilt,
                "design": refs.design, "judges_persons": refs.person_refusal is None,
                "refusal": refs.person_refusal, "subject_map_fingerprint": refs.subject_map_fingerprint,
                "model_fingerprint": refs.model_fingerprint,
                "dataset_fingerprint": refs.dataset_fingerprint, "epochs": refs.epochs, "seed": refs.seed,
                "excluded": refs.excluded, "train_samples": len(refs.train_ids),
                "test_samples": len(refs.test_ids)}


def prepare_references_for(model: str, *, k: int = DEFAULT_K, seed: int = 0, epochs: int | None = None,
                           recipe: str | Path | None = None, root_uri: str | None = None,
                           device: str | None = None, progress: bool = True, tracking_uri: str | None = None,
                           model_name: str | None = None, ledger_url: str | None = None,
                           subject_map: str | None = None, rebuild: bool = False) -> PreparedReferences:
    """`lethe audit prepare`: the stored references of `model`'s root, or K trained here one by one.

    A stored set is returned as it is (a per-sample one says why it judges no person: `refusal`);
    with `rebuild`, K models are trained anew (by subject, with the root's recipe) and replace it once
    all are trained."""
    from lethe.audit import find_references
    from lethe.audit.training import check_same_set, train_references

    with tempfile.TemporaryDirectory(prefix="lethe-audit-") as tmp:
        audited = fetch_audited_model(model, Path(tmp) / "model", tracking_uri=tracking_uri,
                                      model_name=model_name)
        found = find_references(audited.model_dir, root_uri=root_uri)
        if found is not None and not rebuild:
            check_same_set(found, k, seed)
            return PreparedReferences(found, cached=True)
        plan = plan_of(audited, k=k, seed=seed, epochs=epochs, recipe=recipe, root_uri=root_uri,
                       tracking_uri=tracking_uri, ledger_url=ledger_url, subject_map=subject_map)
        return PreparedReferences(train_references(plan, device=device, progress=progress,
                                                   replace_stored=found is not None),
                                  cached=False, rebuilt=found is not None)


# --- the pipeline's three steps ---------------------------------------------------------------------


def plan_reference_models(model: str, plan_dir: str | Path, *, k: int = DEFAULT_K, seed: int = 0,
                          epochs: int | None = None, recipe: str | None = None,
                          tracking_uri: str | None = None, model_name: str | None = None,
                          subject_map: str | None = None) -> list[int]:
    """Write the plan to `plan_dir`; returns the indices 0..K-1 of the models to train. The halves are
    drawn by the subjects of `subject_map` (default LETHE_SUBJECT_MAP, else the synthetic ones)."""
    with tempfile.TemporaryDirectory(prefix="lethe-audit-") as tmp:
        audited = fetch_audited_model(model, Path(tmp) / "model", tracking_uri=tracking_uri,
                                      model_name=model_name)
        plan = plan_of(audited, k=k, seed=seed, epochs=epochs, recipe=recipe or None,
                       tracking_uri=tracking_uri, subject_map=subject_map)
    plan.save(plan_dir)
    if stored_references(plan) is not None:
        log.info("the reference models of %s are stored already: nothing to train",
                 plan.root_fingerprint[:12])
    return list(range(plan.k))  # always K tasks (a stored set makes each a no-op): no empty ParallelFor


def train_reference_model(plan_dir: str | Path, index: int, out_dir: str | Path, *, device: str | None = None,
                          progress: bool = True) -> Path:
    """Train reference model `index` of the plan into `out_dir` (a no-op directory when already stored)."""
    plan = ReferencePlan.load(plan_dir)
    if stored_references(plan) is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        return Path(out_dir)
    return train_reference(plan, index, out_dir, device=device, progress=progress)


def merge_reference_models(plan_dir: str | Path, model_dirs: Sequence[str | Path], *,
                           device: str | None = None,
                           progress: bool = True) -> PreparedReferences:
    """Compute the logits of every trained reference model and store the set (or return the stored one)."""
    plan = ReferencePlan.load(plan_dir)
    stored = stored_references(plan)
    if stored is not None:
        return PreparedReferences(stored, cached=True)
    return PreparedReferences(assemble_references(plan, list(model_dirs), device=device, progress=progress),
                              cached=False)

