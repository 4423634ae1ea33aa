"""The typed records on disk (`lethe.storage.records.Record`): one read/write pair, one-line refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lethe.errors import PipelineError
from lethe.storage.records import Record


class Toy(Record):
    FORMAT = "lethe-toy/2"
    WHAT = "a toy record"
    ERROR = PipelineError
    UPGRADES = {1: lambda raw: {"name": raw["name"], "count": int(raw["n"])}}

    name: str
    count: int = 0
    ids: list[str] = []


def test_a_record_round_trips_through_a_file_and_a_uri(tmp_path):
    toy = Toy(name="a", count=3, ids=["x/1"])
    path = toy.write(tmp_path / "sub" / "toy.json")
    assert json.loads(path.read_text())["format"] == "lethe-toy/2"
    assert Toy.read(path) == toy
    uri = str(tmp_path / "store" / "toy.json")
    toy.put(uri)
    assert Toy.get(uri) == toy
    assert (tmp_path / "store" / "toy.json.sha256").is_file()


def test_an_older_version_is_upgraded_when_read(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"format": "lethe-toy/1", "name": "a", "n": "4"}))
    assert Toy.read(path) == Toy(name="a", count=4)


@pytest.mark.parametrize(("content", "words"), [
    ("not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"format": "lethe-other/2", "name": "a"}), "format 'lethe-other/2'"),
    (json.dumps({"name": "a"}), "no format tag"),
    (json.dumps({"format": "lethe-toy/3", "name": "a"}), "version 3"),
    (json.dumps({"format": "lethe-toy/2", "name": "a", "count": "many"}), "field count"),
    (json.dumps({"format": "lethe-toy/2", "count": 1}), "field name"),
    (json.dumps({"format": "lethe-toy/2", "name": "a", "surprise": 1}), "field surprise"),
])
def test_a_wrong_file_is_refused_in_one_line(tmp_path, content: str, words: str):
    path = tmp_path / "toy.json"
    path.write_text(content)
    with pytest.raises(PipelineError) as caught:
        Toy.read(path)
    message = str(caught.value)
    assert words in message and "\n" not in message


def test_a_missing_file_is_refused_in_one_line(tmp_path):
    with pytest.raises(PipelineError, match="cannot read a toy record"):
        Toy.read(tmp_path / "none.json")


def test_a_version_without_an_upgrade_is_refused():
    class Strict(Record):
        FORMAT = "lethe-strict/2"
        value: Any = None

    with pytest.raises(Exception, match="can no longer read"):
        Strict.from_fields({"format": "lethe-strict/1"})
