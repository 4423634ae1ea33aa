"""The published benchmark results are what the README says: one full run of today's code.

`make bench` writes benchmarks/results/*.json and regenerates benchmarks/README.md; the main README
quotes the speed ratios by hand. These tests fail when either README drifts from the JSON, when a
result predates the current schema (a replaced key such as `eval_speedup`), or when a scenario or
strategy an issue promised is missing from the published run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from benchmarks import readme
from benchmarks.run import DEFAULT_RESULTS
from benchmarks.targets import SPEED_TARGETS

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = ("ssd", "lfssd_paper", "lfssd_assd", "lfssd_search_all", "lfssd_select")


def _json(name: str) -> dict:
    return json.loads((DEFAULT_RESULTS / name).read_text())


def test_published_speed_holds_the_seven_ratios_and_no_replaced_key() -> None:
    speed = _json("speed.json")
    assert speed["profile"]["name"] == "full"
    assert list(speed["headline"]) == [t["key"] for t in SPEED_TARGETS]
    assert all(isinstance(value, float) for value in speed["headline"].values()), speed["headline"]
    for path in DEFAULT_RESULTS.rglob("*.json"):
        assert "eval_speedup" not in path.read_text(), f"{path.name} holds a replaced key"


def test_published_quality_has_every_class_per_strategy_with_the_probe() -> None:
    quality = _json("quality.json")
    assert quality["profile"]["name"] == "full" and quality["profile"]["seeds"] == 3
    classes = {s["forget_class"] for s in quality["scenarios"] if s["kind"] == "class"}
    assert classes == set(range(10))
    for name, by_method in quality["summary"].items():
        if not name.startswith("class-"):
            continue
        for method in (*STRATEGIES, "original", "retrained"):
            metrics = by_method[method]["metrics"]
            assert metrics["forget_accuracy"]["n"] == 3, (name, method)
            assert metrics["probe_forgotten_class_accuracy"]["mean"] is not None, (name, method)
    assert quality["memorised"], "the memorised-subject scenario is part of the published run"


def test_benchmarks_readme_is_the_rendering_of_the_published_json() -> None:
    published = (ROOT / "benchmarks" / "README.md").read_text()
    prose = published.split(readme.PROSE_BEGIN, 1)[1].split(readme.PROSE_END, 1)[0]
    assert readme.render(DEFAULT_RESULTS, "results/", prose, "unused") == published


def test_main_readme_quotes_the_published_speed_ratios() -> None:
    speed = _json("speed.json")
    text = (ROOT / "README.md").read_text()
    date = speed["date"].split()[0]
    assert f"on {speed['machine']['cores']} CPU cores, {date}" in text, "the section names its run"
    for key, value in speed["headline"].items():
        row = re.search(rf"^\| `{key}`[^|]*\| ([^|]+) \|", text, flags=re.MULTILINE)
        assert row, f"no README row for {key}"
        assert row.group(1).strip().startswith(readme.ratio(value)), (key, row.group(1), value)
