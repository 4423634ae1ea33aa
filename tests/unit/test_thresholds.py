"""One set of limits: the gate's thresholds reach the search's targets (a file, inline YAML, storage)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lethe import storage
from lethe.errors import ConfigError
from lethe.evaluation.thresholds import Thresholds, load_thresholds
from lethe.steps.forget_set import load_forget_set
from lethe.steps.unlearn import make_target
from lethe.storage import s3

TIGHT = "{class: {forget_accuracy_max: 0.01}, subject: {member_rate_gap_max: 0.03}}"


def test_defaults_inline_yaml_json_and_files(tmp_path: Path) -> None:
    defaults = Thresholds()
    assert load_thresholds(None) == load_thresholds("") == load_thresholds("  ") == defaults
    inline = load_thresholds(TIGHT)
    assert inline.class_forget_accuracy_max == 0.01 and inline.subject_member_rate_gap_max == 0.03
    assert inline.test_accuracy_drop_max == defaults.test_accuracy_drop_max  # the rest stay the defaults
    assert load_thresholds('{"test_accuracy_drop_max": 0.01}').test_accuracy_drop_max == 0.01
    assert load_thresholds("retain_accuracy_drop_max: 0.5").retain_accuracy_drop_max == 0.5
    path = tmp_path / "gate.yaml"
    path.write_text("class:\n  forget_accuracy_max: 0.02\n")
    assert load_thresholds(str(path)).class_forget_accuracy_max == 0.02
    assert load_thresholds(f"file://{path}").class_forget_accuracy_max == 0.02
    assert load_thresholds(inline) is inline


@pytest.mark.parametrize(("source", "message"), [
    ("{nonsense_max: 1}", "unknown gate threshold"),
    ("{class: {forget_accuracy_max: .inf}}", "finite"),
    ("{class: {forget_accuracy_max: lots}}", "numbers"),
    ("[1, 2]", "mapping"),
    ("{a: [", "not valid YAML"),
    ("no-such-thresholds.yaml", "cannot read gate thresholds"),
])
def test_bad_thresholds_are_refused_in_one_line(source: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_thresholds(source)
    assert "\n" not in str(caught.value)


def test_thresholds_from_object_storage_are_checked_against_their_sidecar(monkeypatch, tmp_path) -> None:
    moto = pytest.importorskip("moto")
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (("AWS_ACCESS_KEY_ID", "t"), ("AWS_SECRET_ACCESS_KEY", "t"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    s3.reset_clients()
    with moto.mock_aws():
        s3.client().create_bucket(Bucket="conf")
        storage.put_bytes(TIGHT.encode(), "s3://conf/gate.yaml")  # with its sidecar
        assert load_thresholds("s3://conf/gate.yaml").class_forget_accuracy_max == 0.01
        s3.client().put_object(Bucket="conf", Key="bare.yaml", Body=TIGHT.encode())  # no sidecar
        with pytest.raises(ConfigError, match="cannot read gate thresholds from s3://conf/bare.yaml"):
            load_thresholds("s3://conf/bare.yaml")
        s3.client().put_object(Bucket="conf", Key="gate.yaml", Body=b"{class: {forget_accuracy_max: 0.9}}")
        with pytest.raises(ConfigError, match="corrupt or was altered"):
            load_thresholds("s3://conf/gate.yaml")
    s3.reset_clients()


def test_the_search_targets_take_the_gates_limits(digits_convnet) -> None:
    model, card = digits_convnet
    request = load_forget_set("digits", card, forget_class=3)
    assert make_target(model, request, device="cpu").limit == Thresholds().class_forget_accuracy_max
    assert make_target(model, request, device="cpu", thresholds=load_thresholds(TIGHT)).limit == 0.01
    subject = load_forget_set("digits", card, forget_ids=["digits/train/0", "digits/train/1"])
    assert make_target(model, subject, device="cpu", thresholds=load_thresholds(TIGHT)).limit == 0.03
