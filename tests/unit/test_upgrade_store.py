"""A store written by lethe 0.1.0 (tests/fixtures/store-v0.1.0) reads correctly with today's code.

The store was written once by `python -m tests.fixtures.make_store_v0_1_0` through the product's own
commands and is never regenerated: when a format changes, this test is what says that old files
still read. What the generation did (its requests, runs and gate thresholds) is the story below;
everything else is read from the store and checked against the other parts of it (the ledger against
the registry, the certificates against the ledger, the cache and the references against the cards).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lethe.config import environment
from tests.fixtures.upgrade_store import STORE_ROOT, SUBJECT_KEY, copy_store, databases

MODEL_NAME = "lethe-classifier"
DIGITS_TRAIN = 1438
#: The generation's story: subject → (samples asked for, state, version that settled it).
REQUESTS = {
    "alice@example.org": (("digits/train/17", "digits/train/42"), "fulfilled", "2"),
    "subject-00003": ((), "fulfilled", "2"),
    "subject-00005": ((), "needs_review", "3"),
    "subject-00007": ((), "cancelled", None),
    "subject-00009": (("digits/train/90",), "pending", None),
}


@dataclass(frozen=True)
class Store:
    root: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def artifacts(self) -> Path:
        return self.home / "artifacts"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A copy of the store (read-only for the tests) with LETHE_HOME pointing at it."""
    from lethe.ledger import dispose_engines

    root = copy_store(tmp_path_factory.mktemp("upgrade") / "store")
    unset = ("LETHE_LEDGER_URL", "LETHE_TRACKING_URI", "MLFLOW_TRACKING_URI", "LETHE_ARTIFACTS",
             "LETHE_MODEL_NAME", "LETHE_DEMO", "LETHE_DATA_DIR", "LETHE_DATASET_URI", "LETHE_SUBJECT_MAP",
             "LETHE_STORE_ONLY")
    with environment({**dict.fromkeys(unset), "LETHE_HOME": str(root / "home"),
                      "LETHE_SUBJECT_KEY": SUBJECT_KEY, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}):
        yield Store(root)
    dispose_engines()


@pytest.fixture(scope="module")
def requests_by_subject(store: Store) -> dict:
    from lethe.ledger import Ledger

    ledger = Ledger()
    by_hash = {request.subject_hash: request for request in ledger.list_requests()}
    return {subject: by_hash.get(ledger.subject_hash(subject)) for subject in REQUESTS}


@pytest.fixture(scope="module")
def registry(store: Store):  # noqa: ANN201 - lethe.registry.Registry
    from lethe.registry import Registry

    return Registry(model_name=MODEL_NAME)


@pytest.fixture(scope="module")
def downloaded(store: Store, registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every version's model directory, downloaded from the registry (files verified on the way)."""
    out = tmp_path_factory.mktemp("versions")
    return {v: registry.download_model(v, out / f"v{v}") for v in ("1", "2", "3")}


def test_the_copys_databases_point_at_the_copy(store: Store) -> None:
    for database in databases(store.root):
        assert f"{STORE_ROOT}/".encode() not in database.read_bytes(), database


def test_the_ledger_lists_every_request_in_its_state(store: Store, requests_by_subject: dict) -> None:
    from lethe.ledger import Ledger

    requests = Ledger().list_requests()
    assert len(requests) == len(REQUESTS)
    for subject, (samples, state, version) in REQUESTS.items():
        request = requests_by_subject[subject]
        assert request is not None, f"the request of {subject} is not found by its subject hash"
        assert request.state == state, subject
        assert request.sample_ids == samples, subject
        assert request.model_version == version, subject
        assert request.deadline > request.received_at
        assert (request.fulfilled_at is not None) == (state == "fulfilled"), subject
    assert [r.state for r in Ledger().list_requests("pending")] == ["pending"]
    review = requests_by_subject["subject-00005"]
    assert "test accuracy dropped" in review.reason
    cancelled = requests_by_subject["subject-00007"]
    history = Ledger().history(cancelled.id)
    assert [t.to_state for t in history] == ["pending", "cancelled"]
    assert "withdrawn by the subject" in (history[-1].note or "")


def test_the_registry_resolves_the_champion_and_the_versions_lineage(registry, requests_by_subject: dict
                                                                     ) -> None:
    assert registry.champion_version() == "2"
    assert registry.resolve("champion").version == "2"
    assert registry.resolve(f"models:/{MODEL_NAME}@champion").version == "2"
    versions = {v.version: v for v in registry.versions()}
    assert sorted(versions) == ["1", "2", "3"]
    assert [v for v, info in versions.items() if info.is_champion] == ["2"]
    base, subjects, failed = versions["1"], versions["2"], versions["3"]
    assert base.parent_version is None and base.gate == "pass" and base.request_ids == ()
    assert subjects.parent_version == "1" and subjects.gate == "pass" and subjects.review is None
    assert failed.parent_version == "2" and failed.gate == "fail" and failed.review == "pending"
    assert [v.version for v in registry.pending_reviews()] == ["3"]
    fulfilled = {requests_by_subject[s].id for s in ("alice@example.org", "subject-00003")}
    assert set(subjects.request_ids) == fulfilled
    assert set(failed.request_ids) == fulfilled | {requests_by_subject["subject-00005"].id}
    for info in versions.values():
        assert info.tags["lethe.lethe_version"] == "0.1.0"
        assert info.tags["lethe.scenario"] == ("base" if info.version == "1" else "subject")
        assert len(info.tags["lethe.model_fingerprint"]) == 64
    # The run that registered a version finds it again (a retried run must not register twice).
    for info in (subjects, failed):
        assert registry.version_of_run(info.tags["lethe.run_id"]).version == info.version


def test_the_model_directories_and_their_cards_load(store: Store, registry, downloaded: dict[str, Path]
                                                    ) -> None:
    import torch

    from lethe.data import load_dataset
    from lethe.models import load_model, read_card

    base_dir = store.root / "models" / "base"
    base_card = read_card(base_dir)
    assert (base_card.arch, base_card.dataset, base_card.num_classes) == ("convnet", "digits", 10)
    assert base_card.arch_kwargs["width"] == 4
    test = load_dataset("digits", "test")
    assert base_card.dataset_fingerprint == load_dataset("digits", "train").fingerprint()

    def accuracy(model: torch.nn.Module, card) -> float:  # noqa: ANN001 - a ModelCard
        with torch.no_grad():
            logits = model(card.normalization.apply(test.inputs))
        assert logits.shape == (len(test), 10) and torch.isfinite(logits).all()
        return (logits.argmax(1) == test.labels).float().mean().item()

    # The weights load as trained: the base model scores what its train.json recorded.
    model, card = load_model(base_dir)
    recorded = json.loads((base_dir / "train.json").read_text())["test_accuracy"]
    assert accuracy(model, card) == pytest.approx(recorded, abs=1e-6)
    for version, directory in downloaded.items():
        model, card = load_model(directory)
        assert card.fingerprint == registry.version(version).tags["lethe.model_fingerprint"]
        assert card.arch == "convnet" and card.num_classes == 10
        assert accuracy(model, card) > 0.5
    assert read_card(downloaded["1"]).fingerprint == base_card.fingerprint
    assert len({read_card(d).fingerprint for d in downloaded.values()}) == 3  # each version its own weights


def test_the_certificates_read_and_match_the_ledger(store: Store, requests_by_subject: dict) -> None:
    from lethe.ledger.certificates import certificate
    from lethe.storage import get_bytes

    files = sorted((store.artifacts / "certificates").glob("*.json"))
    fulfilled = {requests_by_subject[s].id: requests_by_subject[s]
                 for s in ("alice@example.org", "subject-00003")}
    assert {f.stem for f in files} == set(fulfilled)
    for path in files:
        stored = json.loads(get_bytes(str(path)))  # verified against its sha256 sidecar
        request = fulfilled[path.stem]
        assert stored["format"] == "lethe-erasure-certificate/1"
        assert stored["subject_hash"] == request.subject_hash
        assert stored["model_version"] == "2" and stored["model_name"] == MODEL_NAME
        assert stored["gate"]["decision"] == "pass" and stored["run_id"] == request.run_id
        assert stored["within_deadline"] == (request.fulfilled_at <= request.deadline)
        # The certificate today's code makes from the ledger says the same.
        again = certificate(request)
        for key in ("request_id", "subject_hash", "model_version", "fulfilled_at", "received_at", "deadline",
                    "samples", "samples_forgotten", "algorithm", "parameters", "membership"):
            assert again[key] == stored[key], key


def test_the_importances_cache_is_hit_for_the_cached_versions(store: Store, registry,
                                                             downloaded: dict[str, Path]) -> None:
    from lethe.data import load_dataset
    from lethe.models import read_card
    from lethe.steps.cache import ImportancesCache

    cache = ImportancesCache(str(store.artifacts))
    dataset = load_dataset("digits", "train").fingerprint()
    for version in ("1", "2"):  # the parent of the first run, and the new champion (refreshed)
        card = read_card(downloaded[version])
        importances = cache.get(model_fingerprint=card.fingerprint, dataset_fingerprint=dataset,
                                method="lfssd", batch_size=1)
        assert importances is not None, f"no cached importances for version {version}"
        assert importances.method == "lfssd" and importances.batch_size == 1
        assert importances.num_samples == DIGITS_TRAIN
        assert importances.model_fingerprint == card.fingerprint
    # The versions unlearned from a cached parent name that cache entry and its sha256.
    for version, parent in (("2", "1"), ("3", "2")):
        tags = registry.version(version).tags
        uri = cache.uri_for(model_fingerprint=read_card(downloaded[parent]).fingerprint,
                            dataset_fingerprint=dataset, method="lfssd", batch_size=1)
        assert Path(tags["lethe.importances_uri"]) == Path(uri)
        assert tags["lethe.importances_sha256"] == cache.sha256(uri)


def test_the_reference_set_is_found_for_the_root_and_its_descendants(downloaded: dict[str, Path]) -> None:
    from lethe.audit import find_references
    from lethe.models import read_card

    root = read_card(downloaded["1"])
    references = find_references(downloaded["1"])
    assert references is not None
    assert references.k == 2 and references.num_classes == 10
    assert references.model_fingerprint == root.fingerprint
    assert len(references.train_ids) == DIGITS_TRAIN
    assert tuple(references.membership.shape) == (2, DIGITS_TRAIN)
    assert references.train_logits.shape == (2, DIGITS_TRAIN, 10)
    # Each sample is in about half of the reference models: with K=2, in exactly one.
    assert references.membership.sum(0).eq(1).all()
    for version in ("2", "3"):  # unlearned versions reuse their root's references
        found = find_references(downloaded[version])
        assert found is not None and found.uri == references.uri


def test_the_runs_outcomes_and_evidence_read(registry) -> None:
    import tempfile

    from lethe.steps.outcome import read_outcome

    for version, gate in (("2", True), ("3", False)):
        info = registry.version(version)
        outcome = read_outcome(info.tags["lethe.run_id"])
        assert outcome is not None and outcome.run_id == info.tags["lethe.run_id"]
        assert outcome.version == version
        with tempfile.TemporaryDirectory() as tmp:
            path = registry.client.download_artifacts(info.run_id, "evidence/metrics.json", tmp)
            metrics = json.loads(Path(path).read_text())
        assert {"parent", "candidate"} <= set(metrics)
        assert 0 <= metrics["candidate"]["test_accuracy"] <= 1
        assert (info.gate == "pass") is gate


def test_the_cli_reads_the_store(store: Store) -> None:
    """What an operator runs after upgrading: the requests and the reviews, exit 0."""
    import contextlib
    import io

    from lethe.cli import main

    for argv, expected in ((["request", "list"], ["fulfilled", "needs_review", "cancelled", "pending"]),
                           (["review", "list"], ["3"])):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(argv)
        assert code in (0, None), argv
        for word in expected:
            assert word in out.getvalue(), (argv, out.getvalue())
