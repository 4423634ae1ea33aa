"""The model card and the erasure certificate as `lethe.storage.records.Record`s: files written before
(tests/fixtures/formats-0.1.0, made by lethe 0.1.0's own writers) read the same, and new files are
written byte for byte as they were; a wrong file is refused in one line."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

import lethe
from lethe.data import Normalization
from lethe.errors import LedgerError, ModelError
from lethe.ledger import certificate
from lethe.ledger.certificates import ALL_SAMPLES, ErasureCertificate
from lethe.ledger.ledger import ErasureRequest
from lethe.models import load_model, read_card, save_model
from lethe.models.checkpoint import ModelCard
from lethe.unlearning import model_fingerprint

OLD = Path(__file__).parent.parent / "fixtures" / "formats-0.1.0"
REQUEST_ID = "0d6f2c1e-0000-4000-8000-000000000001"


def _with_today(raw: dict) -> dict:
    return {**raw, "lethe_version": lethe.__version__}


def test_an_old_model_directory_loads_and_its_card_reads_the_same(tmp_path: Path) -> None:
    model_dir = shutil.copytree(OLD / "model", tmp_path / "model")
    written = (model_dir / "model.json").read_bytes()
    model, card = load_model(model_dir)
    assert card == read_card(model_dir) and model_fingerprint(model) == card.fingerprint
    assert card.to_fields() == json.loads(written) and card.to_bytes() == written
    assert card.normalization == Normalization((0.5,), (0.25,)) and card.image_size == [8, 8]
    assert card.classes == ["a", "b", "c"]
    assert card.arch_kwargs == {"width": 2, "hidden": 128, "dropout": 0.25}
    assert card.extra == {"root_fingerprint": "r" * 64, "excluded": 3,
                          "unlearning": {"method": "lfssd", "alpha": 7.5, "parent_fingerprint": "p" * 64}}


def test_saving_again_writes_the_card_as_it_was(tmp_path: Path) -> None:
    model, card = load_model(OLD / "model")
    fields = {k: v for k, v in card.to_dict().items() if k not in ("format", "fingerprint", "lethe_version")}
    saved = save_model(model, tmp_path / "again", fields)
    # The one addition since: the buffers' sha256 (issue 27), recorded beside the parameters' fingerprint.
    written = json.loads((tmp_path / "again" / "model.json").read_text())
    assert len(written.pop("buffers_fingerprint")) == 64
    assert saved.to_fields() == {**card.to_fields(), "lethe_version": lethe.__version__,
                                 "buffers_fingerprint": saved.to_fields()["buffers_fingerprint"]}
    expected = _with_today(json.loads((OLD / "model" / "model.json").read_text()))
    assert json.dumps(written, indent=2) == json.dumps(expected, indent=2)


def _old_request(**changes: object) -> ErasureRequest:
    """The request the fixture's certificate was made from."""
    received = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    gate = {"decision": "pass", "reasons": [], "notes": ["request other-1: removed", "weak"],
            "membership_test": "per-example",
            "requests": {REQUEST_ID: {"outcome": "removed", "summary": "gone",
                                      "fpr": {"0.01": {"before": 0.5, "after": 0.0}}},
                         "other-1": {"outcome": "removed"}}}
    outcome = {"model_name": "lethe-digits", "metrics": {"forget_accuracy": 0.125, "test_accuracy": 0.9375},
               "gate": gate, "review": None, "algorithm": "lfssd",
               "parameters": {"alpha": 7.5, "lam": 1.0, "alpha_method": "search", "batch_size": 1},
               "resolution": {"forgotten": 2, "not_in_data": 0, "not_in_data_ids": []}}
    fields = dict(id=REQUEST_ID, subject_hash="ab" * 32, subject_hash_scheme="hmac-sha256/nfkc-casefold",
                  sample_ids=("digits/train/1", "digits/train/2"), received_at=received,
                  deadline=datetime(2025, 3, 31, 12, 0, tzinfo=UTC), state="fulfilled", run_id="run-7",
                  claimed_at=received, lease_expires_at=None, model_version="4", reason=None, outcome=outcome,
                  fulfilled_at=datetime(2025, 3, 2, 8, 30, 15, 123456, tzinfo=UTC), updated_at=received,
                  overdue=False)
    return ErasureRequest(**{**fields, **changes})


def test_an_old_certificate_reads_the_same_and_is_written_as_before(tmp_path: Path) -> None:
    written = (OLD / "certificate.json").read_bytes()
    old = ErasureCertificate.read(OLD / "certificate.json")
    assert old.to_bytes() == written and old.to_fields() == json.loads(written)
    assert old.fulfilled_at == datetime(2025, 3, 2, 8, 30, 15, 123456, tzinfo=UTC) and old.within_deadline
    assert old.samples == 2 and old.membership["outcome"] == "removed" and "requests" not in old.gate
    assert old.gate["notes"] == ["weak"]  # the other request's line is not this subject's business
    today = ErasureCertificate.of(_old_request())
    assert certificate(_old_request()) == _with_today(json.loads(written))
    assert today.to_bytes() == old.model_copy(update={"lethe_version": lethe.__version__}).to_bytes()
    uri = str(tmp_path / "store" / f"{REQUEST_ID}.json")
    today.put(uri)
    assert ErasureCertificate.get(uri) == today


def test_a_certificate_for_every_sample_of_a_subject_round_trips(tmp_path: Path) -> None:
    document = ErasureCertificate.of(_old_request(sample_ids=(), outcome=None))
    assert document.samples == ALL_SAMPLES and document.samples_forgotten is None
    assert document.membership == {"test": None} and document.metrics == {}
    assert ErasureCertificate.read(document.write(tmp_path / "c.json")) == document
    with pytest.raises(LedgerError, match="only a fulfilled request has a certificate"):
        ErasureCertificate.of(_old_request(state="pending"))


CARD = json.loads((OLD / "model" / "model.json").read_text())
CERTIFICATE = json.loads((OLD / "certificate.json").read_text())


@pytest.mark.parametrize(("record", "error", "fields", "words"), [
    (ModelCard, ModelError, {**CARD, "format": "lethe-model/2"}, "version 2"),
    (ModelCard, ModelError, {**CARD, "format": "lethe-dataset/1"}, "not a lethe model card"),
    (ModelCard, ModelError, {**CARD, "num_classes": "10"}, "field num_classes"),
    (ModelCard, ModelError, {**CARD, "image_size": [8, 0]}, "field image_size"),
    (ModelCard, ModelError, {**CARD, "normalization": {"mean": [0.5]}}, "field normalization"),
    (ErasureCertificate, LedgerError, {**CERTIFICATE, "format": "lethe-erasure-certificate/9"}, "version 9"),
    (ErasureCertificate, LedgerError, {**CERTIFICATE, "fulfilled_at": "yesterday"}, "field fulfilled_at"),
    (ErasureCertificate, LedgerError, {**CERTIFICATE, "surprise": 1}, "field surprise"),
    (ErasureCertificate, LedgerError, "[1]", "not a JSON object"),
    (ModelCard, ModelError, "{not json", "not JSON"),
])
def test_a_wrong_file_is_refused_in_one_line(tmp_path: Path, record: type, error: type, fields: object,
                                             words: str) -> None:
    path = tmp_path / "record.json"
    path.write_text(fields if isinstance(fields, str) else json.dumps(fields))
    with pytest.raises(error) as caught:
        record.read(path)
    assert words in str(caught.value) and "\n" not in str(caught.value)
