"""lethe.steps: importances (cache, shards, exact merge), forget sets, outcome markers, collect, finalize."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from lethe.errors import ConfigError, ImportancesError, IntegrityError, PipelineError
from lethe.forgetting.alpha import parse_alpha
from lethe.forgetting.spec import ForgetSpec
from lethe.steps.full_importances import (
    compute_importances,
    compute_importances_shard,
    merge_importances,
    plan_shards,
    shard_range,
)
from lethe.steps.layout import importances_file
from lethe.steps.outcome import outcome_uri, read_outcome, write_outcome
from lethe.steps.register import decision_of
from lethe.unlearning import Importances
from tests.pipelines.helpers import file_requests, lethe_home, register_champion, states

BATCH = 128


@pytest.fixture
def home(tmp_path: Path):
    with lethe_home(tmp_path / "lethe") as root:
        yield root


# --- importances ----------------------------------------------------------------------------

@pytest.mark.parametrize(("n", "b", "k"), [(1438, 128, 3), (1438, 128, 12), (1000, 100, 4), (5, 2, 3)])
def test_shards_cover_every_sample_once_on_batch_boundaries(n, b, k):
    ranges = [shard_range(n, b, i, k) for i in range(k)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    for (_, stop), (start, _) in zip(ranges, ranges[1:], strict=False):
        assert stop == start and start % b == 0
    assert all(stop > start for start, stop in ranges)


def test_more_shards_than_batches_are_refused():
    with pytest.raises(PipelineError, match="at most 12"):
        shard_range(1438, 128, 0, 13)
    with pytest.raises(PipelineError):
        plan_shards(0)
    assert plan_shards(3) == [0, 1, 2]


@pytest.mark.slow
def test_cached_importances_are_reused_and_bound_to_their_key(home, digits_convnet_dir, tmp_path):
    first = compute_importances(digits_convnet_dir, out_path=tmp_path / "a", batch_size=BATCH, progress=False)
    again = compute_importances(digits_convnet_dir, out_path=tmp_path / "b", batch_size=BATCH, progress=False)
    assert (first.cached, again.cached) == (False, True)
    assert first.uri == again.uri and first.sha256 == again.sha256
    a, b = (Importances.load(importances_file(tmp_path / d)) for d in "ab")
    assert all(torch.equal(a[name], b[name]) for name in a)
    info = json.loads((tmp_path / "b" / "importances.json").read_text())
    assert info["cached"] and info["num_samples"] == 1438 and info["batch_size"] == BATCH
    other = compute_importances(digits_convnet_dir, batch_size=64, progress=False)
    assert not other.cached and other.uri != first.uri  # the batch size is part of the key


@pytest.mark.slow
def test_sharded_importances_merge_to_one_pass(home, digits_convnet_dir, tmp_path):
    whole = compute_importances(digits_convnet_dir, out_path=tmp_path / "whole", batch_size=BATCH,
                                use_cache=False, cache_root=str(tmp_path / "elsewhere"), progress=False)
    shards = [tmp_path / f"shard{k}" for k in range(3)]
    for k, path in enumerate(shards):
        info = compute_importances_shard(digits_convnet_dir, out_path=path, shard_index=k, num_shards=3,
                                         batch_size=BATCH, progress=False)
        assert not info.cached
    with pytest.raises(ImportancesError, match="cover"):  # a shard missing is not a merge
        merge_importances(digits_convnet_dir, None, shards[:2], batch_size=BATCH)
    merged = merge_importances(digits_convnet_dir, None, shards, out_path=tmp_path / "merged",
                               batch_size=BATCH)
    assert not merged.cached and merged.num_batches == whole.num_batches == 12
    one, three = (Importances.load(importances_file(tmp_path / d)) for d in ("whole", "merged"))
    for name in one:
        torch.testing.assert_close(three[name], one[name], rtol=1e-5, atol=1e-8)
    # Now cached: every shard is a no-op and the merge reads the cache.
    assert compute_importances_shard(digits_convnet_dir, out_path=tmp_path / "s", shard_index=0,
                                     num_shards=3, batch_size=BATCH).cached
    assert merge_importances(digits_convnet_dir, None, [], batch_size=BATCH).cached


# --- forget sets and outcomes ---------------------------------------------------------------

def test_forget_spec_round_trips_and_refuses_other_files(tmp_path):
    spec = ForgetSpec(scenario="subject", dataset="digits", sample_ids=["digits/train/1"],
                      request_ids=["r1"], parent={"version": "3"}, num_samples=1)
    spec.save(tmp_path)
    assert ForgetSpec.load(tmp_path) == spec
    assert spec.forget_kwargs() == {"forget_ids": ["digits/train/1"], "forget_class": None,
                                    "scenario": "subject"}
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(PipelineError):
        ForgetSpec.load(tmp_path / "other.json")


def test_alpha_parameter():
    assert parse_alpha("search") == "search" and parse_alpha("") == "search"
    assert parse_alpha("12.5") == 12.5 and parse_alpha("ASSD") == "assd"
    with pytest.raises(ConfigError):
        parse_alpha("-1")


def test_outcome_marker_is_verified(home):
    assert read_outcome("run-a") is None
    write_outcome("run-a", {"decision": "pass", "version": "2"})
    assert read_outcome("run-a").version == "2"
    Path(outcome_uri("run-a")).write_text(json.dumps({"run_id": "run-a", "decision": "pass", "version": "9"}))
    with pytest.raises(IntegrityError):
        read_outcome("run-a")
    with pytest.raises(PipelineError):
        outcome_uri("../elsewhere")


def test_markers_and_forget_sets_written_before_records_read_the_same(home, tmp_path):
    """Files as the previous writers wrote them (no format tag on markers; json.dumps layouts)."""
    from lethe.steps.outcome import failure_uri, read_failure
    from lethe.storage import put_bytes

    old = {"run_id": "run-o", "model_name": "m", "version": "4", "decision": "review",
           "gate": {"decision": "review", "reasons": ["r"]}, "request_ids": ["q1"], "scenario": "subject",
           "parent_version": "3", "metrics": {"test_accuracy": 0.9}, "algorithm": "lfssd",
           "parameters": {"alpha": 2.5, "lam": 1.0, "alpha_method": "search", "batch_size": 1}}
    put_bytes((json.dumps(old, indent=2, sort_keys=True) + "\n").encode(), outcome_uri("run-o"))
    outcome = read_outcome("run-o")
    # Fields added since (the parent's metrics, the ladder's rungs) read as empty.
    assert outcome.to_fields() == {"format": "lethe-run-outcome/1", **old, "parent_metrics": {}, "ladder": []}
    note = {"run_id": "run-o", "step": "unlearn", "error": "boom"}
    put_bytes(json.dumps(note).encode(), failure_uri("run-o"))
    assert read_failure("run-o") == "step unlearn failed: boom"
    put_bytes(json.dumps({**note, "format": "lethe-run-failure/9"}).encode(), failure_uri("run-o"))
    assert read_failure("run-o") is None  # a note this lethe cannot read is no note
    spec = {"scenario": "class", "dataset": "digits", "sample_ids": [], "forget_class": 2,
            "request_ids": [], "parent": {"version": "1"}, "num_samples": 143, "num_subjects": 0,
            "request_samples": {}}
    text = json.dumps({"format": "lethe-forget-spec/1", **spec}, indent=1) + "\n"
    (tmp_path / "forget.json").write_text(text)
    loaded = ForgetSpec.load(tmp_path)
    assert loaded.model_dump() == spec and loaded.to_bytes() == (tmp_path / "forget.json").read_bytes()


def test_old_dampening_records_read_with_what_they_recorded(tmp_path):
    from lethe.steps.dampening_record import DampeningRecord

    old = {"format": "lethe-dampening/1", "alpha": 12.0, "lam": 1.0, "selected": {"w": 3},
           "elements": {"w": 9},
           "total_selected": 3, "total_elements": 9, "fraction": 1 / 3, "alpha_method": "search",
           "alpha_assd": 35.0, "target": {"criterion": "member_rate_gap"}, "target_met": True,
           "search": {"trials": []}, "scenario": "subject", "forget_class": None, "dataset": "digits",
           "forget_size": 10, "retain_size": 1428, "importances": {"method": "lfssd"},
           "forget_importances": {}, "parent_fingerprint": "p", "candidate_fingerprint": "c", "seconds": 1.5}
    (tmp_path / "dampening.json").write_text(json.dumps(old, indent=2))
    record = DampeningRecord.read(tmp_path / "dampening.json")
    assert record.method is None and record.cutoff is None and record.search == {"trials": []}
    assert {k: v for k, v in record.to_fields().items() if v is not None or k in old} == old


def test_decision_names():
    assert decision_of(True, True) == "pass"
    assert decision_of(False, False) == "review"
    assert decision_of(False, True) == "stale"


# --- collect --------------------------------------------------------------------------------

def test_collect_with_nothing_pending_needs_no_champion(home, tmp_path):
    from lethe.steps.collect import collect_requests

    result = collect_requests("run-1", forget_path=tmp_path / "f", model_dir=tmp_path / "m")
    assert result.num_requests == 0
    assert ForgetSpec.load(tmp_path / "f").empty


def test_collect_without_a_champion_claims_nothing(home, tmp_path):
    from lethe.errors import RegistryError
    from lethe.steps.collect import collect_requests

    ids = file_requests(["subject-00001"])
    with pytest.raises(RegistryError):
        collect_requests("run-1", forget_path=tmp_path / "f", model_dir=tmp_path / "m")
    assert states() == {ids[0]: "pending"}


def test_collect_resolves_subjects_and_fails_what_it_cannot(home, tmp_path, digits_convnet_dir):
    from lethe.data import load_dataset, subject_map
    from lethe.ledger import Ledger
    from lethe.steps.collect import collect_requests

    register_champion(digits_convnet_dir)
    ledger = Ledger()
    whole = ledger.add("subject-00007").request.id
    some = ledger.add("someone", ["digits/train/5", "digits/train/6"]).request.id
    bad_ids = ledger.add("someone-else", ["digits/train/99999"]).request.id
    unknown = ledger.add("nobody").request.id
    # Filed unchecked (--defer-check): the known id is forgotten, the unknown one noted.
    partly = ledger.add("a-third-one", ["digits/train/8", "digits/train/99998"]).request.id
    result = collect_requests("run-1", forget_path=tmp_path / "f", model_dir=tmp_path / "m", max_requests=10)
    assert sorted(result.request_ids) == sorted([whole, some, partly])
    assert set(result.failed) == {bad_ids, unknown}
    assert "1 of 1 sample id(s) are not in digits/train" in ledger.get(bad_ids).reason
    spec = ForgetSpec.load(tmp_path / "f")
    owned = subject_map(load_dataset("digits", "train"))["subject-00007"]
    assert set(spec.sample_ids) == {*owned, "digits/train/5", "digits/train/6", "digits/train/8"}
    assert spec.request_samples[partly] == ["digits/train/8"]
    resolution = ledger.get(partly).outcome["resolution"]
    assert (resolution["forgotten"], resolution["not_in_data_ids"]) == (1, ["digits/train/99998"])
    assert "1 sample id(s) not in the data" in ledger.history(partly)[-1].note
    # A whole-subject request keeps the samples it resolved to: retention retires their copies by them.
    assert ledger.get(whole).outcome["resolution"] == {"forgotten": len(owned), "not_in_data": 0,
                                                       "not_in_data_ids": [], "forgotten_ids": owned}
    assert spec.parent["version"] == "1" and (tmp_path / "m" / "model.json").is_file()
    now = states()
    assert (now[whole], now[some], now[bad_ids], now[unknown], now[partly]) == (
        "in_progress", "in_progress", "failed", "failed", "in_progress")
    text = (tmp_path / "f" / "forget.json").read_text()
    assert not any(subject in text for subject in ("subject-00007", "someone", "nobody"))
    # A retried collect in the same run finds its own claim again.
    again = collect_requests("run-1", forget_path=tmp_path / "f2", model_dir=tmp_path / "m2")
    assert sorted(again.request_ids) == sorted([whole, some, partly])


def test_requests_are_checked_when_filed_with_the_runs_code(home, digits_convnet_dir, capsys):
    from lethe.cli import main
    from lethe.ledger import Ledger

    def add(*argv: str) -> tuple[int, str, str]:
        code = main(["request", "add", *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    # No champion: nothing to check against, unless a data set is named or the check deferred.
    code, _, err = add("--subject", "alice", "--samples", "digits/train/17")
    assert code == 2 and "no champion is registered" in err and "--defer-check" in err
    assert add("--subject", "alice", "--samples", "digits/train/17", "--dataset", "digits")[0] == 0

    register_champion(digits_convnet_dir)
    before = Ledger().list_requests()
    code, out, err = add("--subject", "bob", "--samples", "digits/train/17", "digits/train/4242",
                         "nonsense-id")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert ("2 of 3 sample id(s) are not in digits/train (1,438 samples): digits/train/4242, nonsense-id"
            in err)
    code, _, err = add("--subject", "nobody-we-know")
    assert code == 2 and "unknown to the subject map of digits/train" in err and "nobody" not in err
    code, _, err = add("--subject", "bob", "--samples", "digits/train/17", "--dataset", "fashion-mnist")
    assert code == 2  # another data set than the champion's is refused, as a run refuses it
    assert Ledger().list_requests() == before
    code, out, _ = add("--subject", "subject-00003")
    assert code == 0 and "(recorded)" in out
    request_id = out.split()[0]
    assert main(["request", "amend", request_id, "--samples", "digits/train/99999"]) == 2
    assert "not in digits/train" in capsys.readouterr().err
    assert main(["request", "amend", request_id, "--samples", "digits/train/9"]) == 0
    assert Ledger().get(request_id).sample_ids == ("digits/train/9",)


# --- finalize -------------------------------------------------------------------------------

def _claimed(run_id: str, subjects: list[str]) -> list[str]:
    from lethe.ledger import Ledger

    ids = file_requests(subjects)
    Ledger().claim(run_id, lease=timedelta(hours=1))
    return ids


def _outcome(decision: str, ids: list[str]) -> dict:
    return {"decision": decision, "version": "7", "model_name": "m", "request_ids": ids,
            "gate": {"decision": "review" if decision == "review" else "pass",
                     "reasons": ["too much damage"]},
            "metrics": {"test_accuracy": 0.9}, "algorithm": "lfssd", "parameters": {"alpha": 10.0}}


def test_finalize_fulfils_only_a_successful_promoted_run(home):
    from lethe.ledger import Ledger
    from lethe.steps.finalize import finalize_requests

    ids = _claimed("run-ok", ["a1", "a2"])
    write_outcome("run-ok", _outcome("pass", ids))
    result = finalize_requests("run-ok", pipeline_state="SUCCEEDED")
    assert sorted(result.fulfilled) == sorted(ids) and not result.released
    request = Ledger().get(ids[0])
    assert (request.state, request.model_version) == ("fulfilled", "7")
    certificate = json.loads(Path(result.certificates[0]).read_text())
    assert certificate["model_version"] == "7" and certificate["parameters"] == {"alpha": 10.0}


def test_finalize_sends_a_failed_gate_to_review(home):
    from lethe.ledger import Ledger
    from lethe.steps.finalize import finalize_requests

    ids = _claimed("run-rv", ["b1"])
    write_outcome("run-rv", _outcome("review", ids))
    assert finalize_requests("run-rv").needs_review == ids
    request = Ledger().get(ids[0])
    assert request.state == "needs_review" and "too much damage" in request.reason


@pytest.mark.parametrize(("state", "decision"), [("FAILED", "pass"), ("SUCCEEDED", None),
                                                 ("SUCCEEDED", "stale"), ("CANCELLED", "pass")])
def test_finalize_never_fulfils_a_failed_or_undecided_run(home, state, decision):
    from lethe.ledger import Ledger
    from lethe.steps.finalize import finalize_requests

    ids = _claimed("run-x", ["c1", "c2"])
    if decision:
        write_outcome("run-x", _outcome(decision, ids))
    result = finalize_requests("run-x", pipeline_state=state, error="Task unlearn failed.")
    assert sorted(result.released) == sorted(ids) and not result.fulfilled
    assert set(states().values()) == {"pending"}
    notes = [t.note for t in Ledger().history(ids[0])]
    assert any(n and n.startswith("released:") for n in notes)


def test_finalize_with_nothing_held_is_a_no_op(home):
    from lethe.steps.finalize import finalize_requests

    ids = _claimed("someone-else", ["d1"])
    assert finalize_requests("run-idle").summary.endswith("no request to settle")
    assert states() == {ids[0]: "in_progress"}
