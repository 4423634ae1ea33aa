"""Reference models of a model version: K models trained with its recipe on random halves of its data.

The membership test (LiRA, Carlini et al. 2022; U-LiRA, Hayes et al. 2024; per person:
`lethe.evaluation.per_person`) compares a model's confidence on a person's samples with models that
never saw that person. The halves are drawn by subject (`lethe.audit.design`): all of a person's samples
are in the training half of ⌊K/2⌋ reference models and out of the others, so every person has about
K/2 "out" models that never met them. Samples the root version itself was trained without (a retrained
version's exclusions) are out of every reference model. The models repeat the root's recipe exactly
(`lethe.audit.recipe`).

Stored once per root version under `<artifacts>/audit/references/<root fingerprint>/`:
`references.safetensors` (membership, the subject group of every training sample, the labels, each
model's logits on the training and test splits), `references.json` (a `ReferenceManifest`: ids,
fingerprints, recipe, design, the subject map's fingerprint; written last, so a set without it is
unfinished) and `models/ref-NN/` (the reference model directories), all with sha256 sidecars. Every
unlearned descendant of the root reuses them. They hold the data of people who later ask for erasure:
audit artifacts, never registered or served, kept where the ledger is, retired with their version.

A set of format `lethe-references/1` was drawn sample by sample: it stays readable (its per-sample
shares are still reported) but is marked `per-sample` and judges no person (`person_refusal`) until
`lethe audit prepare --rebuild` replaces it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

import lethe
from lethe.audit.location import (  # noqa: F401 (where the sets live, read from here too)
    MANIFEST_FILE,
    MODELS_DIR,
    TENSORS_FILE,
    model_name,
    references_root,
    references_uri,
    retire_references,
    stored_manifest,
)
from lethe.audit.plan import SEED_SCHEME
from lethe.audit.records import PER_SAMPLE, PER_SUBJECT, ReferenceManifest
from lethe.errors import AuditError, EvaluationError
from lethe.evaluation.per_example import ReferenceOutputs
from lethe.evaluation.per_person import PersonNull, person_null
from lethe.models.checkpoint import ModelCard, read_card
from lethe.storage import exists, get_bytes, join_uri, put_bytes

log = logging.getLogger(__name__)

FORMAT = ReferenceManifest.FORMAT
#: Fewer reference models leave a person out of one model only: no null of persons (`person_null`).
MIN_K_FOR_PERSONS = 3
#: What to run to replace a set that cannot judge a person.
REBUILD = "`lethe audit prepare --model MODEL --rebuild`"


@dataclass(frozen=True)
class ReferenceSet:
    """K reference models' membership and logits for one root version (see the module docstring).

    `membership[k, i]`: sample `train_ids[i]` was in reference model k's training half.
    `train_logits[k, i]` / `test_logits[k, j]`: model k's float32 logits on the training and test splits.
    `groups[i]`: the subject group of training sample i (-1: none); `train_labels` / `test_labels`: the
    labels the logits are scored against. The three are None in a per-sample (version 1) set.
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
    design: str = PER_SUBJECT
    subject_map_fingerprint: str | None = None
    groups: torch.Tensor | None = None  # int64 [N_train]
    train_labels: torch.Tensor | None = None  # int64 [N_train]
    test_labels: torch.Tensor | None = None  # int64 [N_test]

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
        if self.design not in (PER_SUBJECT, PER_SAMPLE):
            raise AuditError(f"unknown reference design {self.design!r}")
        for name, tensor, size in (("groups", self.groups, n), ("train labels", self.train_labels, n),
                                   ("test labels", self.test_labels, self.test_logits.shape[1])):
            if tensor is not None and tuple(tensor.shape) != (size,):
                raise AuditError(f"reference {name} must be [{size}], not {list(tensor.shape)}")

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

    @property
    def person_refusal(self) -> str | None:
        """Why this set cannot judge a person, in one line; None when it can."""
        if self.design == PER_SAMPLE:
            return (f"the reference models at {self.uri or 'hand'} are per-sample (lethe-references/1, "
                    "halves drawn sample by sample): they split a person's samples, so they judge no person "
                    f"until rebuilt with {REBUILD}")
        if self.groups is None or self.train_labels is None or self.test_labels is None:
            return (f"the reference models at {self.uri or 'hand'} record no subject groups or labels, so "
                    f"they judge no person until rebuilt with {REBUILD}")
        if self.k < MIN_K_FOR_PERSONS:
            return (f"the {self.k} reference models at {self.uri or 'hand'} leave each person out of one "
                    "model, too few for a null of persons (each model in turn the target against the "
                    f"others): rebuild at least {MIN_K_FOR_PERSONS} with `lethe audit prepare --model MODEL "
                    "--rebuild --k 8`")
        return None

    @cached_property
    def person_null(self) -> PersonNull | None:
        """The null of real persons (`lethe.evaluation.per_person.person_null`), computed once per set
        from the stored logits alone; None when the set judges no person."""
        if self.person_refusal is not None:
            return None
        assert self.groups is not None and self.train_labels is not None and self.test_labels is not None
        return person_null(self.train_logits, self.train_labels, self.membership, self.groups,
                           self.test_logits, self.test_labels)

    def outputs(self, rows: Sequence[int] | torch.Tensor) -> ReferenceOutputs:
        """The `ReferenceOutputs` of the training samples at `rows` (one evaluation's forget set): their
        logits, out masks and groups, the test logits, and the null of persons (or why there is none)."""
        rows = torch.as_tensor(rows, dtype=torch.int64)
        refusal, null = self.person_refusal, None
        if refusal is None:
            try:
                null = self.person_null
            except EvaluationError as exc:  # too few persons out of two models for any null
                refusal = f"the reference models at {self.uri or 'hand'} judge no person: {exc}"
        return ReferenceOutputs(
            self.train_logits[:, rows], self.out_mask(rows), self.test_logits,
            forget_groups=None if self.groups is None else self.groups[rows], null=null, refusal=refusal)

    def manifest(self, tensors_sha256: str) -> ReferenceManifest:
        return ReferenceManifest(
            k=self.k, train_ids=self.train_ids, test_ids=self.test_ids,
            model_fingerprint=self.model_fingerprint, dataset_fingerprint=self.dataset_fingerprint,
            recipe=self.recipe, seed=self.seed,
            epochs=self.epochs, excluded=self.excluded, reference_fingerprints=self.reference_fingerprints,
            created_at=self.created_at, num_classes=self.num_classes, lethe_version=lethe.__version__,
            tensors_sha256=tensors_sha256, design=self.design,
            subject_map_fingerprint=self.subject_map_fingerprint, seed_scheme=SEED_SCHEME)

    def save(self, uri: str) -> ReferenceSet:
        """Store the tensors, then the manifest (with their sha256) at `uri`; returns the set with `uri`."""
        from safetensors.torch import save

        tensors = {"membership": self.membership.to(torch.uint8).contiguous(),
                   "train_logits": self.train_logits.float().contiguous(),
                   "test_logits": self.test_logits.float().contiguous()}
        for name in ("groups", "train_labels", "test_labels"):
            value = getattr(self, name)
            if value is not None:
                tensors[name] = value.to(torch.int64).contiguous()
        tensors_sha = put_bytes(save(tensors), join_uri(uri, TENSORS_FILE))
        self.manifest(tensors_sha).put(join_uri(uri, MANIFEST_FILE))
        return replace(self, uri=uri)

    @classmethod
    def load(cls, uri: str) -> ReferenceSet:
        """The set stored at `uri`, every file checked against its sha256 (a version-1 set reads as a
        per-sample one)."""
        from safetensors.torch import load

        raw = stored_manifest(uri)
        if raw is None:
            raise AuditError(f"{uri} holds no lethe reference models ({FORMAT})")
        data = get_bytes(join_uri(uri, TENSORS_FILE))
        if hashlib.sha256(data).hexdigest() != raw.tensors_sha256:
            raise AuditError(f"the reference tensors at {uri} are not the ones its manifest records")
        tensors = load(data)
        return cls(k=raw.k, train_ids=list(raw.train_ids), membership=tensors["membership"].bool(),
                   train_logits=tensors["train_logits"], test_logits=tensors["test_logits"],
                   model_fingerprint=raw.model_fingerprint, dataset_fingerprint=raw.dataset_fingerprint,
                   recipe=dict(raw.recipe), uri=uri, test_ids=list(raw.test_ids), seed=raw.seed,
                   epochs=raw.epochs, excluded=raw.excluded,
                   reference_fingerprints=list(raw.reference_fingerprints), created_at=raw.created_at,
                   design=raw.design, subject_map_fingerprint=raw.subject_map_fingerprint,
                   groups=tensors.get("groups"), train_labels=tensors.get("train_labels"),
                   test_labels=tensors.get("test_labels"))


def find_references(card_or_model_dir: ModelCard | str | Path, *, root_uri: str | None = None
                    ) -> ReferenceSet | None:
    """The reference models of this version's root (itself, or the version it was unlearned from);
    None when none were prepared."""
    from lethe.audit.recipe import root_fingerprint

    card = card_or_model_dir if isinstance(card_or_model_dir, ModelCard) else read_card(card_or_model_dir)
    uri = references_uri(root_fingerprint(card), root_uri)
    if not exists(join_uri(uri, MANIFEST_FILE)):
        return None
    return ReferenceSet.load(uri)
