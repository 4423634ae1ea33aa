"""Leaks (issue 16, finding 6) and one person = one subject (finding 7).

No raw subject id, sample id or credential in a log, an MLflow field or an error; a subject is one
subject however its id is typed; the subject key must carry 32 bytes. (The full-run grep of every
file a scheduled run leaves is in tests/pipelines/test_local_run.py, on the run it already makes.)
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from lethe.errors import ConfigError, RegistryError
from tests.pipelines.helpers import lethe_home, register_champion
from tests.robustness.conftest import run_in_process

KEY = "privacy-test-key-of-at-least-32-bytes!"
PASSWORD = "Planted-Pa55word-7781"


def find_leaks(root: Path, needles: list[str], *, skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(file, needle) for every needle found in any file below `root`, raw or JSON-escaped."""
    forms = {n: {n.encode(), json.dumps(n)[1:-1].encode()} for n in needles}
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if any(part in skip for part in path.relative_to(root).parts) or path.name in skip:
            continue
        data = path.read_bytes()
        found += [(str(path.relative_to(root)), n) for n, encoded in forms.items()
                  if any(e in data for e in encoded)]
    return found


# --- finding 6: leaks -------------------------------------------------------------------------------

def test_urls_with_credentials_are_masked_in_every_error(tmp_path: Path) -> None:
    cases = [(["review", "list"], {"LETHE_TRACKING_URI": f"http://user:{PASSWORD}@127.0.0.1:9/"}),
             (["request", "list", "--ledger", f"postgresql://lethe:{PASSWORD}@127.0.0.1:9/lethe"], {})]
    for argv, env in cases:
        result = run_in_process(argv, {"LETHE_HOME": str(tmp_path), **env})
        assert result.code == 2 and result.err.startswith("lethe: error: "), result.err
        assert PASSWORD not in result.err + result.out
    assert "http://user:***@127.0.0.1:9" in run_in_process(*cases[0][::1]).err.replace(str(tmp_path), "")

    from lethe.redact import mask_credentials

    assert mask_credentials(f"s3://AKIA:{PASSWORD}@bucket/k and https://tok@host/x") == \
        "s3://AKIA:***@bucket/k and https://***@host/x"


@pytest.fixture
def home(tmp_path: Path, digits_convnet_dir: Path):  # a champion: version 1
    with lethe_home(tmp_path / "lethe") as root:
        register_champion(digits_convnet_dir)
        yield root


def test_review_refuses_subject_and_sample_ids_in_by_and_reason(home: Path, digits_convnet_dir: Path) -> None:
    from lethe.ledger import Ledger
    from lethe.registry import PromotionDecision, Registry

    Ledger().add("subject-00003")
    version = Registry().register_version(digits_convnet_dir, gate=PromotionDecision(False, ("gate",)),
                                          scenario="subject", parent_version="1").version
    env = {"LETHE_HOME": str(home)}
    for by, reason in (("digits/train/17", "fine"), ("Dana", "subject-00003 asked twice"),
                       ("Dana", "as SUBJECT-00003, wrote"), ("subject-00003", "fine"),
                       ("Dana", "per subject=alice@example.org"),
                       ("Dana", "alice@example.org's request is fine"),
                       ("<bob.smith+gdpr@mail.example.co.uk>", "fine")):
        for action in ("approve", "reject"):
            result = run_in_process(["review", action, version, "--by", by, "--reason", reason], env)
            assert result.code == 2 and "only request ids may leave the ledger" in result.err, (by, reason)
            assert "subject-00003" not in result.err.lower() and "digits/train/17" not in result.err
            assert "alice@" not in result.err and "bob.smith" not in result.err
    tags = Registry().version(version).tags
    assert tags["review"] == "pending" and "review.by" not in tags and Registry().champion_version() == "1"
    assert run_in_process(["review", "approve", version, "--by", "Dana", "--reason", "fine"], env).code == 0


def test_a_forget_ids_file_is_never_echoed(digits_convnet_dir: Path, tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    lines = ["root:$6$Zq8s1$planted.hash.value:19000:0:99999:7:::", "daemon:*:19000:0:99999:7:::"]
    secret.write_text("\n".join(lines) + "\n")
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe planted \x00 bytes")
    for path in (secret, binary):
        result = run_in_process(["unlearn", "--model", str(digits_convnet_dir), "--dataset", "digits",
                                 "--forget-ids", f"@{path}", "--out", str(tmp_path / "out"), "--no-progress"],
                                {"LETHE_SUBJECT_KEY": KEY})
        assert result.code == 2 and result.err.count("\n") == 1, result.err
        leaked = [t for t in ("Zq8s1", "daemon", "planted", "99999") if t in result.err + result.out]
        assert not leaked, result.err
    assert not (tmp_path / "out").exists()


def test_the_local_runner_redacts_id_parameters_in_its_log(tmp_path: Path) -> None:
    """KFP dumps each task's executor input, parameters and all, into the task log. The first task
    fails at once here (no such model): its dump is all this test needs, and costs one subprocess."""
    from lethe.kfp.local import run_local

    subjects = ["SUBJECT-00003", unicodedata.normalize("NFD", "Zoë Example")]
    with lethe_home(tmp_path / "lethe") as home:
        run = run_local("unlearning", {"model": "models:/no-such-model/1", "forget_subjects": subjects,
                                       "forget_ids": ["digits/train/17"]},
                        pipeline_root=home / "kfp", log_path=home / "kfp.log")
    assert not run.succeeded and run.tasks.get("prepare-request") == "FAILURE"
    log = (home / "kfp.log").read_text()
    assert "executor_input" in log and "<redacted>" in log  # the dump is there, its ids are not
    assert find_leaks(home, [*subjects, "digits/train/17"]) == []
    assert all(value not in (run.error or "") for value in subjects)


def test_the_task_stream_redacts_values_split_over_writes() -> None:
    import io

    from lethe.kfp.local import id_redactor
    from lethe.kfp.local_hooks import TaskOutput

    sink = io.StringIO()
    stream = TaskOutput(sink, redact=id_redactor({"forget_ids": '["digits/train/17"]',
                                                         "forget_subjects": ["Zoë"]}))
    for chunk in ('INFO Got executor_input:\n    "forget_ids": ["digits/tr', 'ain/17"],\n',
                  '    "forget_subjects": ["Zo\\u00eb"]\n', "tail Zoë"):
        stream.write(chunk)
    stream.finish()
    text = sink.getvalue()
    assert "digits/train/17" not in text and "Zo" not in text and text.count("<redacted>") == 3


# --- finding 7: one person, one subject -------------------------------------------------------------

def test_one_person_is_one_subject_however_the_id_is_typed(tmp_path: Path) -> None:
    from lethe.data.subjects import samples_of
    from lethe.ledger import Ledger, certificate

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", subject_key=KEY.encode())
    forms = [unicodedata.normalize("NFC", "Zoë@x.org"), unicodedata.normalize("NFD", "Zoë@x.org"),
             "ZOË@X.ORG", " zoë@x.org\t", "ＺＯË@x.org"]  # the last in full-width letters (NFKC folds them)
    first = ledger.add(forms[0])
    assert first.created and first.request.subject_hash_scheme == "hmac-sha256/nfkc-casefold"
    for form in forms[1:]:
        again = ledger.add(form)
        assert not again.created and again.request.id == first.request.id, form
    assert len(ledger.list_requests()) == 1
    mapping = {"ZOË@X.ORG": ["digits/train/1"], "zoë@x.org": ["digits/train/2"], "bob": ["digits/train/3"]}
    assert samples_of(mapping, [forms[1]]) == (["digits/train/1", "digits/train/2"], 0)
    ledger.claim("r", request_ids=[first.request.id])
    done = ledger.fulfil([first.request.id], run_id="r", model_version="2", outcome={})[0]
    assert certificate(done)["subject_hash_scheme"] == "hmac-sha256/nfkc-casefold"


def test_requests_filed_under_the_old_scheme_are_still_found(tmp_path: Path) -> None:
    """Rows hashed before normalisation (scheme NULL in the ledger) cannot be rehashed: lookups try both."""
    import sqlite3

    from sqlalchemy import update

    from lethe.ledger import Ledger, hash_subject
    from lethe.ledger.engine import dispose_engines
    from lethe.ledger.schema import RequestRow
    from lethe.subject_id import LEGACY_SUBJECT_HASH_SCHEME

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url, subject_key=KEY.encode())
    old = ledger.add("Alice Example").request
    legacy = hash_subject("Alice Example", KEY.encode(), LEGACY_SUBJECT_HASH_SCHEME)
    with ledger._transaction() as session:  # what an older lethe stored
        session.execute(update(RequestRow).where(RequestRow.id == old.id)
                        .values(subject_hash=legacy, intake_key=legacy, subject_hash_scheme=None))
    dispose_engines()
    with sqlite3.connect(tmp_path / "ledger.db") as db:  # an older ledger has no scheme column
        db.execute("ALTER TABLE erasure_requests DROP COLUMN subject_hash_scheme")
    ledger = Ledger(url, subject_key=KEY.encode())  # ...and gets it when opened
    assert ledger.get(old.id).subject_hash_scheme == LEGACY_SUBJECT_HASH_SCHEME
    again = ledger.add("Alice Example", ["digits/train/9"])
    assert not again.created and again.request.id == old.id
    assert ledger.mentions_subject("approved for Alice Example.") and not ledger.mentions_subject("Bob")


def test_the_subject_key_must_carry_32_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    from lethe.config import DEMO_SUBJECT_KEY, settings

    monkeypatch.delenv("LETHE_DEMO", raising=False)
    for weak in ("k", "ab" * 16, base64.b64encode(b"x" * 24).decode(), "short-passphrase"):
        monkeypatch.setenv("LETHE_SUBJECT_KEY", weak)
        with pytest.raises(ConfigError, match="needs at least 32"):
            settings().require_subject_key()
    for strong in ("ab" * 32, base64.b64encode(b"x" * 32).decode(), "a raw passphrase of 32 bytes or more"):
        monkeypatch.setenv("LETHE_SUBJECT_KEY", strong)
        assert settings().require_subject_key() == strong.encode()  # the HMAC key is unchanged
    monkeypatch.delenv("LETHE_SUBJECT_KEY")
    monkeypatch.setenv("LETHE_DEMO", "1")
    assert settings().require_subject_key() == DEMO_SUBJECT_KEY  # the demo's own, public key only


def test_the_privacy_guard_hook_is_what_refuses_free_text() -> None:
    from lethe.registry import PrivacyGuard

    guard = PrivacyGuard(names_subject=lambda text: "alice" in text.casefold())
    guard.check_text("reviewed by the DPO", "a reason")
    with pytest.raises(RegistryError, match="only request ids"):
        guard.check_text("ALICE asked", "a reason")


def test_cancel_and_retry_refuse_an_email_address_in_the_reason(tmp_path: Path) -> None:
    from lethe.ledger import Ledger

    env = {"LETHE_HOME": str(tmp_path / "home"), "LETHE_DEMO": "1", "LETHE_SUBJECT_KEY": None,
           "LETHE_LEDGER_URL": None}
    with lethe_home(tmp_path / "home"):
        request = Ledger().add("subject-00001").request.id
    for action in ("cancel", "retry"):
        for reason in ("asked by alice@example.org", "per subject=alice@example.org", "digits/train/3 twice"):
            result = run_in_process(["request", action, request, "--reason", reason], env)
            assert result.code == 2 and "names a subject id" in result.err, (action, reason, result.err)
            assert "alice@" not in result.err and len(result.err.splitlines()) == 1
    with lethe_home(tmp_path / "home"):
        assert Ledger().get(request).state == "pending"


def test_data_subjects_never_prints_the_ids_of_a_real_map(tmp_path: Path) -> None:
    subjects = tmp_path / "subjects.csv"
    subjects.write_text("subject_id,sample_id\nalice@example.org,digits/train/0\nbob,digits/train/1\n")
    for argv, env in ((["data", "subjects", "digits"], {"LETHE_SUBJECT_MAP": str(subjects)}),
                      (["data", "subjects", "digits", "--subjects", str(subjects)], {})):
        result = run_in_process(argv, {"LETHE_HOME": str(tmp_path / "home"), **env})
        assert result.code == 0, result.err
        assert "alice" not in result.out and "bob" not in result.out and "2 subjects" in result.out


def test_model_register_uploads_only_the_model_files(tmp_path: Path, digits_convnet_dir: Path) -> None:
    import shutil

    from lethe.registry import Registry

    model = tmp_path / "model"
    shutil.copytree(digits_convnet_dir, model)
    (model / "subjects.csv").write_text("subject_id,sample_id\nalice@example.org,digits/train/0\n")
    (model / "ledger.db").write_bytes(b"SQLite format 3\x00")
    (model / "notes").mkdir()
    (model / "notes" / "ids.txt").write_text("alice@example.org\n")
    with lethe_home(tmp_path / "lethe") as home:
        result = run_in_process(["model", "register", str(model), "--champion"], {"LETHE_HOME": str(home)})
        assert result.code == 0, result.err
        info = Registry().version("1")
        uploaded = {Path(a.path).name for a in Registry().client.list_artifacts(info.run_id, "model")}
        assert {"model.safetensors", "model.json", "train.json"} <= uploaded
        assert not uploaded & {"subjects.csv", "ledger.db", "notes"}, uploaded
        assert set(json.loads(info.tags["lethe.model_manifest"])) <= uploaded
        loaded, _card = Registry().load_model("1")  # the manifest checks out on the way back
        assert loaded is not None
