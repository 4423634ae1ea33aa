"""The Evidently report on a seeded sample of the retain rows: the same rows every time, said in the
report, and never able to contradict the gate (which measures every row)."""

from __future__ import annotations

import json

import torch

from lethe.evaluation import comparison_frame, evidently_disagreements, write_evidently_report
from lethe.evaluation.evaluator import report_rows
from lethe.evaluation.gate import Check


def test_a_small_set_is_shown_whole_and_a_large_one_as_a_seeded_sample() -> None:
    assert report_rows(50, 100, seed=0) == slice(None)
    rows = report_rows(1_000, 100, seed=3)
    assert isinstance(rows, torch.Tensor) and len(rows) == 100 == len(set(rows.tolist()))
    assert bool((rows[1:] > rows[:-1]).all()) and int(rows.min()) >= 0 and int(rows.max()) < 1_000
    assert torch.equal(rows, report_rows(1_000, 100, seed=3))  # the same rows on every run
    assert not torch.equal(rows, report_rows(1_000, 100, seed=4))


def _frame(n: int, *, agree: bool) -> object:
    generator = torch.Generator().manual_seed(n)
    parent = torch.randn(n, 3, generator=generator)
    labels = parent.argmax(1)  # the parent is always right
    candidate = parent if agree else -parent  # the candidate is always wrong
    return comparison_frame(parent, candidate, labels)


def test_a_sampled_section_is_said_to_be_one_and_its_checks_are_tested_on_the_gates_values(tmp_path) -> None:
    # The sampled retain rows look like a large accuracy drop; the gate, on every row, measured none.
    sections = {"forget": _frame(8, agree=True), "retain": _frame(12, agree=False)}
    checks = [Check("retain_accuracy_drop", 0.0, 0.05, True, ""),
              Check("forget_accuracy", 1.0, 0.5, False, "")]
    sample = {"retain": {"rows": 12, "of": 5_000, "seed": 0}}
    report = write_evidently_report(sections, checks, tmp_path / "r.html", tmp_path / "r.json",
                                    samples=sample)
    assert report["samples"] == sample
    assert json.loads((tmp_path / "r.json").read_text())["samples"] == sample
    sections_of = {t["check"]: t["section"] for t in report["tests"]}
    assert sections_of == {"retain_accuracy_drop": "gate", "forget_accuracy": "forget"}
    assert evidently_disagreements(report, checks) == []
    assert "a seeded sample of 12 of 5,000 rows" in (tmp_path / "r.html").read_text()
