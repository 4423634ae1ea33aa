"""Reference models of a model version: K models trained with its recipe on random halves of its data.

The per-example membership test (LiRA, Carlini et al. 2022; U-LiRA, Hayes et al. 2024) compares a
model's confidence on a sample with models that never saw it. The halves follow a balanced design:
each sample is in the training half of K/2 reference models and out of the other K/2 (for odd K,
⌊K/2⌋ or ⌈K/2⌉), so every sample has about K/2 "out" models. Samples the root version itself was
trained without (a retrained version's exclusions) are out of every reference model.

Stored once per root version under `<artifacts>/audit/references/<root fingerprint>/`:
`references.safetensors` (membership, each model's logits on the training and test splits),
`references.json` (ids, fingerprints, recipe; written last, so a set without it is unfinished) and
`models/ref-NN/` (the reference model directories), all with sha256 sidecars. Every unlearned
descendant of the root reuses them. They hold the data of people who later ask for erasure: audit
artifacts, never registered or served, kept where the ledger is, retired with their version.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

import lethe
from lethe.audit.recipe import HOW_TO_SUPPLY, matching_recipe, own_recipe, root_fingerprint
from lethe.config import settings
from lethe.data import SampleSet, load_dataset
from lethe.devices import default_device
from lethe.errors import AuditError, StorageError
from lethe.models.checkpoint import ModelCard, load_model, read_card, save_model
from lethe.models.training import train_classifier
from lethe.models.zoo import build_model
from lethe.storage import delete, exists, get_bytes, get_dir, join_uri, list_uris, put_bytes, put_dir
from lethe.storage.records import read_record, write_record

log = logging.getLogger(__name__)

FORMAT = "lethe-references/1"
PLAN_FORMAT = "lethe-reference-plan/1"
DEFAULT_K = 8
MANIFEST_FILE = "references.json"
TENSORS_FILE = "references.safetensors"
MODELS_DIR = "models"
PLAN_FILE = "plan.json"
LOGITS_BATCH_SIZE = 512


def references_root(root_uri: str | None = None) -> str:
    """Where every version's reference models live: `<artifacts>/audit/references`."""
    return join_uri(str(root_uri or settings().artifacts), "audit", "references")


def references_uri(fingerprint: str, root_uri: str | None = None) -> str:
    """The folder of the reference models of the root version `fingerprint`."""
    if not fingerprint or not fingerprint.isalnum():
        raise AuditError(f"invalid model fingerprint {fingerprint!r} for the reference models' folder")
    return join_uri(references_root(root_uri), fingerprint)


def model_name(index: int) -> str:
    return f"ref-{index:02d}"


def membership_design(k: int, n: int, *, seed: int, never_in: torch.Tensor | None = None) -> torch.Tensor:
    """A [K, N] boolean matrix, True where sample i is in reference model k's training half.

    Each sample is in ⌊K/2⌋ models (odd K: ⌊K/2⌋ or ⌈K/2⌉ at random), the models chosen at random per
    sample, so every sample is out in about K/2 models and each model trains on about N/2 samples.
    `never_in`: a [N] mask of samples no reference model may train on (the root never saw them)."""
    if k < 2:
        raise AuditError(f"reference models come in sets of at least 2, not {k}")
    generator = torch.Generator().manual_seed(int(seed))
    ranks = torch.rand(n, k, generator=generator).argsort(dim=1).argsort(dim=1)  # a random order per sample
    in_count = torch.full((n,), k // 2, dtype=torch.int64)
    if k % 2:
        in_count += torch.randint(0, 2, (n,), generator=generator)
    membership = (ranks < in_count[:, None]).T.contiguous()
    if never_in is not None:
        membership[:, never_in] = False
    return membership


@dataclass(frozen=True)
class ReferenceSet:
    """K reference models' membership and logits for one root version (see the module docstring).

    `membership[k, i]`: sample `train_ids[i]` was in reference model k's training half.
    `train_logits[k, i]` / `test_logits[k, j]`: model k's float32 logits on the training and test splits.
    """

    k: int
    train_ids: list[str]
    membership: torch.Tensor  # bool [K, N_train]
    train_logits: torch.Tensor  # float32 [K, N_train, C]
    test_logits: torch.Tensor  # float32 [K, N_test, C]
    model_fingerprint: str  # the root version's
    dataset_fingerprint: str
    recipe: dict[str, Any]
    uri: str
    test_ids: list[str] = field(default_factory=list)
    seed: int = 0
    epochs: int = 0  # what each reference model trained for (the recipe's, unless overridden)
    excluded: int = 0  # samples the root never saw: out of every reference model
    reference_fingerprints: list[str] = field(default_factory=list)
    created_at: str = ""

    def __post_init__(self) -> None:
        k, n = self.k, len(self.train_ids)
        if tuple(self.membership.shape) != (k, n) or self.membership.dtype != torch.bool:
            raise AuditError(f"reference membership must be bool [{k}, {n}], not "
                             f"{self.membership.dtype} {list(self.membership.shape)}")
        if self.train_logits.ndim != 3 or tuple(self.train_logits.shape[:2]) != (k, n):
            raise AuditError(f"reference train logits must be [{k}, {n}, C], not "
                             f"{list(self.train_logits.shape)}")
        if self.test_logits.ndim != 3 or self.test_logits.shape[0] != k \
                or self.test_logits.shape[2] != self.train_logits.shape[2]:
            raise AuditError(f"reference test logits must be [{k}, N_test, C], not "
                             f"{list(self.test_logits.shape)}")
        if self.test_ids and len(self.test_ids) != self.test_logits.shape[1]:
            raise AuditError(f"{len(self.test_ids)} test ids for {self.test_logits.shape[1]} test logits")

    @property
    def num_classes(self) -> int:
        return int(self.train_logits.shape[2])

    def indices_of(self, ids: Sequence[str]) -> torch.Tensor:
        """Positions of training sample ids in `train_ids` (an unknown id is an AuditError)."""
        index = {sample_id: i for i, sample_id in enumerate(self.train_ids)}
        unknown = [s for s in ids if s not in index]
        if unknown:
            raise AuditError(f"{len(unknown)} sample id(s) are not in the reference models' training set")
        return torch.tensor([index[s] for s in ids], dtype=torch.int64)

    def out_mask(self, indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """[K, len(indices)] bool: True where reference model k never trained on the sample."""
        positions = torch.as_tensor(indices, dtype=torch.int64)
        return ~self.membership[:, positions]

    def check_dataset(self, fingerprint: str) -> None:
        """Refuse to compare against data other than the one the references were trained on."""
        if fingerprint != self.dataset_fingerprint:
            raise AuditError(f"the reference models were trained on data set {self.dataset_fingerprint[:12]},"
                             f" not {fingerprint[:12]}: prepare references for this data")

    def manifest(self) -> dict[str, Any]:
        return {"format": FORMAT, "k": self.k, "train_ids": self.train_ids, "test_ids": self.test_ids,
                "model_fingerprint": self.model_fingerprint, "dataset_fingerprint": self.dataset_fingerprint,
                "recipe": self.recipe, "seed": self.seed, "epochs": self.epochs, "excluded": self.excluded,
                "reference_fingerprints": self.reference_fingerprints, "created_at": self.created_at,
                "num_classes": self.num_classes, "lethe_version": lethe.__version__}

    def save(self, uri: str) -> ReferenceSet:
        """Store the tensors, then the manifest (with their sha256) at `uri`; returns the set with `uri`."""
        from safetensors.torch import save

        tensors = {"membership": self.membership.to(torch.uint8).contiguous(),
                   "train_logits": self.train_logits.float().contiguous(),
                   "test_logits": self.test_logits.float().contiguous()}
        tensors_sha = put_bytes(save(tensors), join_uri(uri, TENSORS_FILE))
        put_bytes((json.dumps({**self.manifest(), "tensors_sha256": tensors_sha}, indent=1) + "\n").encode(),
                  join_uri(uri, MANIFEST_FILE))
        return replace(self, uri=uri)

    @classmethod
    def load(cls, uri: str) -> ReferenceSet:
        """The set stored at `uri`, every file checked against its sha256."""
        from safetensors.torch import load

        try:
            raw = json.loads(get_bytes(join_uri(uri, MANIFEST_FILE)))
        except ValueError as exc:
            raise AuditError(f"the reference models' manifest at {uri} is not JSON") from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise AuditError(f"{uri} holds no lethe reference models ({FORMAT})")
        data = get_bytes(join_uri(uri, TENSORS_FILE))
        import hashlib

        if hashlib.sha256(data).hexdigest() != raw.get("tensors_sha256"):
            raise AuditError(f"the reference tensors at {uri} are not the ones its manifest records")
        tensors = load(data)
        return cls(k=int(raw["k"]), train_ids=list(raw["train_ids"]),
                   membership=tensors["membership"].bool(), train_logits=tensors["train_logits"],
                   test_logits=tensors["test_logits"], model_fingerprint=raw["model_fingerprint"],
                   dataset_fingerprint=raw["dataset_fingerprint"], recipe=dict(raw["recipe"]), uri=uri,
                   test_ids=list(raw.get("test_ids") or []), seed=int(raw.get("seed", 0)),
                   epochs=int(raw.get("epochs", 0)), excluded=int(raw.get("excluded", 0)),
                   reference_fingerprints=list(raw.get("reference_fingerprints") or []),
                   created_at=str(raw.get("created_at", "")))


def find_references(card_or_model_dir: ModelCard | str | Path, *, root_uri: str | None = None
                    ) -> ReferenceSet | None:
    """The reference models of this version's root (itself, or the version it was unlearned from);
    None when none were prepared."""
    card = card_or_model_dir if isinstance(card_or_model_dir, ModelCard) else read_card(card_or_model_dir)
    uri = references_uri(root_fingerprint(card), root_uri)
    if not exists(join_uri(uri, MANIFEST_FILE)):
        return None
    return ReferenceSet.load(uri)


def retire_references(fingerprint: str, *, root_uri: str | None = None) -> int:
    """Delete the reference models of the root version `fingerprint` (when a retrained version replaced
    it); returns how many files were removed."""
    uri = references_uri(fingerprint, root_uri)
    manifest = join_uri(uri, MANIFEST_FILE)
    removed = 0
    if exists(manifest):  # the manifest first: a half-deleted set is never taken for a whole one
        delete(manifest)
        removed += 1
    for item in list_uris(uri):
        if not item.endswith(".sha256") and exists(item):
            delete(item)
            removed += 1
    return removed


# --- preparing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferencePlan:
    """Everything a reference model's training needs, fixed before any is trained (the pipeline's
    `plan` artifact): the root, its recipe and data, the design's seed, the excluded samples."""

    root_fingerprint: str
    dataset: str
    dataset_fingerprint: str
    k: int
    seed: int
    epochs: int
    recipe: dict[str, Any]
    uri: str
    excluded_ids: list[str] = field(default_factory=list)  # the root never saw them: out everywhere

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        return write_record(path / PLAN_FILE if path.suffix != ".json" else path, PLAN_FORMAT, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> ReferencePlan:
        path = Path(path)
        path = path / PLAN_FILE if path.is_dir() else path
        return cls(**read_record(path, PLAN_FORMAT, what="a lethe reference plan", error=AuditError))

    def splits(self) -> tuple[SampleSet, SampleSet]:
        """The recipe's training and test splits, checked against the fingerprint the plan recorded."""
        train, test = load_dataset(self.dataset, "train"), load_dataset(self.dataset, "test")
        if train.fingerprint() != self.dataset_fingerprint:
            raise AuditError(f"data set {self.dataset} changed since the plan was made: its fingerprint is "
                             f"{train.fingerprint()[:12]}, not {self.dataset_fingerprint[:12]}")
        return train, test

    def membership(self, train: SampleSet) -> torch.Tensor:
        never_in = None
        if self.excluded_ids:
            never_in = torch.zeros(len(train), dtype=torch.bool)
            never_in[train.indices_of(self.excluded_ids)] = True
        return membership_design(self.k, len(train), seed=self.seed, never_in=never_in)


def plan_references(model_dir: str | Path, *, k: int = DEFAULT_K, seed: int = 0, epochs: int | None = None,
                    recipe: Mapping[str, Any] | str | Path | None = None, exclude_ids: Sequence[str] = (),
                    root_uri: str | None = None) -> ReferencePlan:
    """Check everything (recipe, data, exclusions) and fix the plan; trains nothing.

    The recipe: `recipe` (a dict or a train.json), else the model's own train.json (a trained
    version), else the one stored with its root's references. `exclude_ids`: the samples a retrained
    root was trained without; they must match the recipe's record of them (count and sha256)."""
    from lethe.models.baseline import excluded_digest

    card = read_card(model_dir)
    root = root_fingerprint(card)
    uri = references_uri(root, root_uri)
    if recipe is not None:
        chosen = matching_recipe(recipe, root)
    else:
        chosen = own_recipe(model_dir, card) if root == card.fingerprint else None
        if chosen is None and exists(join_uri(uri, MANIFEST_FILE)):
            chosen = ReferenceSet.load(uri).recipe
    if chosen is None:
        raise AuditError(f"model {card.fingerprint[:12]} has no training recipe (the train.json of its root "
                         f"version {root[:12]}): {HOW_TO_SUPPLY}")
    if k < 2:
        raise AuditError(f"reference models come in sets of at least 2, not {k}")
    train = load_dataset(str(chosen["dataset"]), "train")
    dataset_fp = train.fingerprint()
    recorded = chosen.get("dataset_fingerprint")
    if recorded and recorded != dataset_fp:
        raise AuditError(f"the root version was trained on data set {str(recorded)[:12]} but "
                         f"{chosen['dataset']} is now {dataset_fp[:12]}: its reference models cannot be "
                         "trained on other data")
    if card.num_classes != train.num_classes:
        raise AuditError(f"the model has {card.num_classes} classes but {chosen['dataset']} has "
                         f"{train.num_classes}: the recipe is not this model's")
    excluded = list(dict.fromkeys(exclude_ids))
    if int(chosen.get("excluded") or 0) != len(excluded) or (
            excluded and chosen.get("excluded_sha256") != excluded_digest(excluded)):
        raise AuditError(f"the root version was trained without {int(chosen.get('excluded') or 0)} "
                         f"sample(s) and {len(excluded)} were named: its reference models need exactly the "
                         "samples it was trained without (a retrained version's: those of the requests it "
                         "honours)")
    if excluded:
        train.indices_of(excluded)  # unknown ids are refused before any training
    return ReferencePlan(root_fingerprint=root, dataset=str(chosen["dataset"]),
                         dataset_fingerprint=dataset_fp,
                         k=int(k), seed=int(seed), epochs=int(epochs or chosen["epochs"]),
                         recipe=dict(chosen), uri=uri, excluded_ids=excluded)


def train_reference(plan: ReferencePlan, index: int, out_dir: str | Path, *, train: SampleSet | None = None,
                    test: SampleSet | None = None, device: str | None = None, progress: bool = True) -> Path:
    """Train reference model `index` of the plan on its half; writes a model directory to `out_dir`."""
    if not 0 <= index < plan.k:
        raise AuditError(f"reference model {index} is outside 0..{plan.k - 1}")
    if train is None or test is None:
        train, test = plan.splits()
    half = plan.membership(train)[index]
    recipe = plan.recipe
    model_seed = plan.seed * 1009 + index + 1  # distinct per model, and from the root's own seed
    torch.manual_seed(model_seed)
    network = build_model(str(recipe["model"]), num_classes=train.num_classes, in_channels=train.in_channels,
                          **dict(recipe["arch_kwargs"]))
    result = train_classifier(network, train.subset(half.nonzero().flatten()), None, epochs=plan.epochs,
                              batch_size=int(recipe["batch_size"]), lr=float(recipe["lr"]), seed=model_seed,
                              device=device, progress=progress, augment=bool(recipe["augment"]))
    save_model(network, out_dir, {
        "dataset": train.name, "normalization": train.normalization,
        "classes": list(train.classes) if train.classes else None, "image_size": list(train.image_size),
        "dataset_fingerprint": plan.dataset_fingerprint,
        # An audit artifact of that root version: never registered, never served.
        "reference_of": plan.root_fingerprint, "reference_index": index, "reference_seed": model_seed,
        "reference_train_seconds": round(result.seconds, 3)})
    return Path(out_dir)


@torch.no_grad()
def logits_of(model: nn.Module, samples: SampleSet, *, device: str) -> torch.Tensor:
    """float32 [N, C] logits of `model` (eval mode) on every sample, in order, on the CPU."""
    model.to(device).eval()
    outputs = [model(x).float().cpu()
               for x in samples.batches(LOGITS_BATCH_SIZE, with_labels=False, device=device)]
    model.to("cpu")
    return torch.cat(outputs)


def assemble_references(plan: ReferencePlan, model_dirs: Sequence[str | Path], *,
                        train: SampleSet | None = None, test: SampleSet | None = None,
                        device: str | None = None, progress: bool = True) -> ReferenceSet:
    """Each reference model's logits on both splits, stored with the models under the plan's URI."""
    if len(model_dirs) != plan.k:
        raise AuditError(f"the plan has {plan.k} reference models, {len(model_dirs)} were trained")
    if train is None or test is None:
        train, test = plan.splits()
    device = device or default_device()
    train_logits, test_logits, fingerprints = [], [], []
    by_index: dict[int, Path] = {}
    for model_dir in model_dirs:
        card = read_card(model_dir)
        if card.extra.get("reference_of") != plan.root_fingerprint:
            raise AuditError(f"{model_dir} is not a reference model of {plan.root_fingerprint[:12]}")
        by_index[int(card.extra["reference_index"])] = Path(model_dir)
    if sorted(by_index) != list(range(plan.k)):
        raise AuditError(f"reference models {sorted(by_index)} do not make the set 0..{plan.k - 1}")
    for index in range(plan.k):
        model, card = load_model(by_index[index])
        train_logits.append(logits_of(model, train, device=device))
        test_logits.append(logits_of(model, test, device=device))
        fingerprints.append(card.fingerprint)
    for index in range(plan.k):  # the models first: a manifest never names models that are not stored
        put_dir(by_index[index], join_uri(plan.uri, MODELS_DIR, model_name(index)))
    references = ReferenceSet(
        k=plan.k, train_ids=list(train.ids), membership=plan.membership(train),
        train_logits=torch.stack(train_logits), test_logits=torch.stack(test_logits),
        model_fingerprint=plan.root_fingerprint, dataset_fingerprint=plan.dataset_fingerprint,
        recipe=plan.recipe, uri=plan.uri, test_ids=list(test.ids), seed=plan.seed, epochs=plan.epochs,
        excluded=len(plan.excluded_ids), reference_fingerprints=fingerprints,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return references.save(plan.uri)


def stored_references(plan: ReferencePlan) -> ReferenceSet | None:
    """The set already stored for the plan's root; one of another size or seed is refused, not mixed."""
    if not exists(join_uri(plan.uri, MANIFEST_FILE)):
        return None
    stored = ReferenceSet.load(plan.uri)
    if (stored.k, stored.seed) != (plan.k, plan.seed):
        raise AuditError(f"reference models of {plan.root_fingerprint[:12]} exist with K={stored.k}, seed "
                         f"{stored.seed}: use those, or retire them first (`lethe audit retire`)")
    return stored


def reference_model(references: ReferenceSet, index: int, dest_dir: str | Path) -> Path:
    """Download reference model `index` of a stored set (verified) into `dest_dir`."""
    try:
        return get_dir(join_uri(references.uri, MODELS_DIR, model_name(index)), dest_dir)
    except StorageError as exc:
        raise AuditError(f"reference model {index} of {references.uri} cannot be read: {exc}") from exc


def prepare_references(model_dir: str | Path, *, k: int = DEFAULT_K, seed: int = 0,
                       root_uri: str | None = None, device: str | None = None, progress: bool = True,
                       epochs: int | None = None,
                       recipe: Mapping[str, Any] | str | Path | None = None,
                       exclude_ids: Sequence[str] = ()) -> ReferenceSet:
    """The reference models of the version at `model_dir` (or of its root): stored ones when there,
    else K trained one after another here, stored and returned. See `plan_references` for the
    recipe and `exclude_ids`; `epochs` overrides the recipe's (tests, quick runs)."""
    card = read_card(model_dir)
    found = find_references(card, root_uri=root_uri)
    if found is not None:
        if found.k != k or found.seed != seed:
            raise AuditError(f"reference models of {found.model_fingerprint[:12]} exist with K={found.k}, "
                             f"seed {found.seed}: use those, or retire them first (`lethe audit retire`)")
        return found
    plan = plan_references(model_dir, k=k, seed=seed, epochs=epochs, recipe=recipe, exclude_ids=exclude_ids,
                           root_uri=root_uri)
    train, test = plan.splits()
    device = device or default_device()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lethe-references-") as tmp:
        dirs = [train_reference(plan, index, Path(tmp) / model_name(index), train=train, test=test,
                                device=device, progress=progress) for index in range(plan.k)]
        references = assemble_references(plan, dirs, train=train, test=test, device=device, progress=progress)
    log.info("trained %d reference models of %s in %.1f s", plan.k, plan.root_fingerprint[:12],
             time.perf_counter() - started)
    return references
