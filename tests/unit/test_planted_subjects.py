"""Planted memorised subjects (`lethe.data.planted`), the Evidently report on a two-class forget set, and
the demo's per-example summary lines."""

from __future__ import annotations

import pytest
import torch

from lethe.data.planted import (
    STAMP_ID_SEPARATOR,
    STAMPED,
    STAMPED_TRUE_CLASS,
    WRONG_LABEL,
    agreement,
    plant_subjects,
)
from lethe.errors import DataError


def test_wrong_label_subjects_change_only_their_labels(digits_train, digits_test) -> None:
    planted = plant_subjects(digits_train, digits_test, wrong_label=5, stamped=0, per_subject=10, seed=3)
    ids = planted.ids_of_kind(WRONG_LABEL)
    assert len(planted.of_kind(WRONG_LABEL)) == 5 and len(ids) == len(set(ids)) == 50
    rows = digits_train.indices_of(ids)
    assert bool((planted.train.labels[rows] != digits_train.labels[rows]).all())  # every one is wrong
    others = torch.ones(len(digits_train), dtype=torch.bool)
    others[rows] = False
    assert torch.equal(planted.train.labels[others], digits_train.labels[others])
    assert torch.equal(planted.train.inputs, digits_train.inputs)  # images untouched
    assert planted.train.ids == digits_train.ids  # the data set's own ids, same order
    assert planted.stamped_test is None


def test_stamped_subjects_carry_their_pattern_and_label_also_on_held_out_images(digits_train,
                                                                                digits_test) -> None:
    planted = plant_subjects(digits_train, digits_test, wrong_label=2, stamped=3, per_subject=10,
                             stamped_test_per_subject=7, seed=1)
    assert set(planted.kinds.values()) == {WRONG_LABEL, STAMPED}
    assert not set(planted.ids_of_kind(WRONG_LABEL)) & set(planted.ids_of_kind(STAMPED))
    for subject in planted.of_kind(STAMPED):
        row, col, pattern = planted.patterns[subject]
        p = pattern.shape[-1]
        rows = digits_train.indices_of(planted.subjects[subject])
        assert bool((planted.train.inputs[rows, :, row:row + p, col:col + p] == pattern).all())
        assert bool((planted.train.labels[rows] == planted.labels[subject]).all())
        held_out = planted.stamped_test.indices_of(planted.stamped_test_subjects[subject])
        assert len(held_out) == 7
        assert bool((planted.stamped_test.inputs[held_out, :, row:row + p, col:col + p] == pattern).all())
        assert bool((planted.stamped_test.labels[held_out] == planted.labels[subject]).all())
        # Held-out images of other classes only: predicting the subject's label is the pattern's doing.
        originals = [i.split(STAMP_ID_SEPARATOR)[0] for i in planted.stamped_test_subjects[subject]]
        assert bool((digits_test.labels[digits_test.indices_of(originals)] != planted.labels[subject]).all())


def test_stamped_subjects_of_their_true_class_keep_their_labels(digits_train, digits_test) -> None:
    planted = plant_subjects(digits_train, digits_test, wrong_label=2, stamped=2, stamped_true_class=3,
                             per_subject=10, stamped_test_per_subject=7, seed=1)
    before = plant_subjects(digits_train, digits_test, wrong_label=2, stamped=2, per_subject=10,
                            stamped_test_per_subject=7, seed=1)
    assert {s: planted.subjects[s] for s in before.subjects} == before.subjects  # the others unchanged
    subjects = planted.of_kind(STAMPED_TRUE_CLASS)
    assert len(subjects) == 3 and planted.of_kinds((STAMPED, STAMPED_TRUE_CLASS)) == [
        *planted.of_kind(STAMPED), *subjects]
    every = [i for ids in planted.subjects.values() for i in ids]
    assert len(every) == len(set(every)) == 70  # no image in two subjects
    for subject in subjects:
        rows = digits_train.indices_of(planted.subjects[subject])
        label = planted.labels[subject]
        assert bool((digits_train.labels[rows] == label).all())  # images of one class ...
        assert bool((planted.train.labels[rows] == label).all())  # ... that keep it
        row, col, pattern = planted.patterns[subject]
        p = pattern.shape[-1]
        assert bool((planted.train.inputs[rows, :, row:row + p, col:col + p] == pattern).all())
        held_out = planted.stamped_test.indices_of(planted.stamped_test_subjects[subject])
        originals = [i.split(STAMP_ID_SEPARATOR)[0] for i in planted.stamped_test_subjects[subject]]
        assert len(held_out) == 7  # of other classes, read as the subject's label when the pattern speaks
        assert bool((digits_test.labels[digits_test.indices_of(originals)] != label).all())


def test_planting_is_deterministic_per_seed_and_checks_its_input(digits_train, digits_test) -> None:
    first = plant_subjects(digits_train, digits_test, wrong_label=3, stamped=2, seed=7)
    again = plant_subjects(digits_train, digits_test, wrong_label=3, stamped=2, seed=7)
    other = plant_subjects(digits_train, digits_test, wrong_label=3, stamped=2, seed=8)
    assert first.train.fingerprint() == again.train.fingerprint() != other.train.fingerprint()
    assert first.subjects == again.subjects != other.subjects
    assert first.stamped_test.fingerprint() == again.stamped_test.fingerprint()
    with pytest.raises(DataError, match="planted images"):
        plant_subjects(digits_train, wrong_label=200, per_subject=10)
    with pytest.raises(DataError, match="does not fit"):
        plant_subjects(digits_train, stamped=1, pattern_size=9)
    assert agreement(torch.tensor([1, 2, 3]), torch.tensor([1, 0, 3])) == pytest.approx(2 / 3)


@pytest.mark.slow
def test_the_evidently_report_takes_a_two_class_forget_set_without_class_1(tmp_path) -> None:
    """Reported: "KeyError: 1" with a forget set of labels {3, 9} (ids digits/train/3, 30, 300). Not
    reproduced here (nor through `lethe retrain` on those ids); this holds the case."""
    from lethe.evaluation.report import comparison_frame, write_evidently_report

    labels = torch.tensor([3, 9, 3])
    for parent, candidate in (([3, 9, 3], [3, 9, 9]), ([3, 9, 3], [0, 0, 0]), ([9, 9, 9], [3, 3, 3])):
        logits = [torch.nn.functional.one_hot(torch.tensor(p), 10).float() * 80 for p in (parent, candidate)]
        frame = comparison_frame(*logits, labels)
        report = write_evidently_report({"forget": frame}, [], tmp_path / "r.html", tmp_path / "r.json")
        values = {m["metric_name"]: m["value"] for m in report["metrics"]}
        expected = float((torch.tensor(candidate) == labels).double().mean())
        assert values["Accuracy(classification_name=candidate)"] == pytest.approx(expected)


def test_the_demo_summary_shows_each_request_outcome_before_and_after_next_to_non_members() -> None:
    from lethe.demo import membership_lines

    def share(flagged: int, n: int) -> dict:
        return {"flagged": flagged, "n": n, "share": flagged / n, "ci_low": 0.0, "ci_high": 1.0}

    evidence = {"requests": {"0123456789ab": {"outcome": "removed", "fpr": {"0.01": {
        "parent": share(9, 10), "candidate": share(0, 10),
        "parent_non_member": share(2, 200), "candidate_non_member": share(3, 200)}}}}}
    versions = [{"version": "1"}, {"version": "2", "metrics": {"per_example": evidence}}]
    text = "\n".join(membership_lines(versions, {"k": 4, "epochs": 6, "uri": "x"}))
    assert "4 reference models" in text and "1% false-positive rate" in text
    row = next(line for line in text.splitlines() if line.startswith("01234567"))
    assert "removed" in row and "9/10 → 0/10" in row and "1.0% → 1.5%" in row
    assert membership_lines([{"version": "1"}], None) == []
