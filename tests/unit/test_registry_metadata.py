"""What lethe records on a model version, without MLflow: typed tags, lineage, description words."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from lethe.errors import RegistryError
from lethe.registry import tags
from lethe.registry.description import AWAITS_REVIEW, describe, reviewed_description
from lethe.registry.lineage import Lineage, may_promote
from lethe.registry.metadata import PromotionDecision, VersionInfo, VersionMetadata

ROOT = Path(__file__).resolve().parents[2]

#: The tags of a version as lethe 0.1.0 wrote them (a failed gate, review pending, a long id list).
OLD_TAGS = {
    "lethe.scenario": "subject", "lethe.parent_version": "2", "lethe.request_count": "3",
    "lethe.gate": "fail", "lethe.gate_reasons": "forget accuracy 0.4 > 0.2",
    "lethe.model_fingerprint": "f" * 64, "lethe.model_manifest": json.dumps({"model.json": "a" * 64}),
    "lethe.lethe_version": "0.1.0", "lethe.request_ids": "r1,r2", "lethe.request_ids.2": ",r3",
    "lethe.new_request_ids": "r3", "lethe.run_id": "run-7", "lethe.importances_uri": "s3://b/imp",
    "lethe.importances_sha256": "b" * 64, "lethe.alpha": "12.5", "lethe.lambda": "1.0",
    "lethe.method": "lfssd",
    "review": "pending", "lethe.model_serving_manifest": json.dumps({"MLmodel": "c" * 64}),
    "mlflow.someone.else": "ignored",
}


def test_tags_written_by_an_older_lethe_read_typed() -> None:
    metadata = VersionMetadata.from_tags(OLD_TAGS)
    assert metadata.request_ids == ("r1", "r2", "r3") and metadata.new_request_ids == ("r3",)
    assert metadata.parent_version == "2" and metadata.gate == "fail" and metadata.review == "pending"
    assert metadata.alpha == 12.5 and metadata.lam == 1.0 and metadata.run_key == "run-7"
    assert metadata.model_manifest == {"model.json": "a" * 64}
    assert metadata.serving_manifest == {"MLmodel": "c" * 64}
    info = VersionInfo("m", "3", "run", None, "", tags=OLD_TAGS)  # type: ignore[arg-type]
    assert info.request_ids == ("r1", "r2", "r3") and info.review == "pending" and info.parent_version == "2"


def test_tags_are_written_as_an_older_lethe_wrote_them() -> None:
    written = VersionMetadata.from_tags(OLD_TAGS).to_tags()
    expected = {k: v for k, v in OLD_TAGS.items() if not k.startswith("mlflow.")}
    expected["lethe.request_ids"] = "r1,r2,r3"  # one tag holds them: no continuation
    del expected["lethe.request_ids.2"]
    assert written == expected


def test_a_base_version_records_empty_lineage_tags() -> None:
    written = VersionMetadata(scenario="base", gate="pass", lethe_version="0.1.0").to_tags()
    assert written["lethe.parent_version"] == "" and written["lethe.request_ids"] == ""
    assert "review" not in written and "lethe.alpha" not in written
    assert VersionMetadata.from_tags(written).parent_version is None


def test_long_lists_continue_in_numbered_tags() -> None:
    ids = tuple(f"request-{i:06d}" for i in range(2 * tags.LONG_TAG_CHUNK // 10))
    written = VersionMetadata(request_ids=ids).to_tags()
    assert all(len(v) <= tags.LONG_TAG_CHUNK for v in written.values())
    assert "lethe.request_ids.2" in written and VersionMetadata.from_tags(written).request_ids == ids
    short = {k for k, v in written.items() if len(v) <= 8000 and not k.startswith("lethe.model_")}
    assert VersionMetadata.run_tags(written).keys() == short


@pytest.mark.parametrize(("tag", "value"), [("lethe.alpha", "many"), ("lethe.gate", "maybe"),
                                            ("lethe.model_manifest", "{not json"), ("review", "perhaps")])
def test_a_malformed_tag_is_named_in_one_line(tag: str, value: str) -> None:
    with pytest.raises(RegistryError, match=f"version tag {tag} is malformed") as caught:
        VersionMetadata.from_tags({**OLD_TAGS, tag: value})
    assert "\n" not in str(caught.value)


def test_no_tag_name_is_spelled_outside_the_registrys_tags_module() -> None:
    names = {value for name, value in vars(tags).items() if name.endswith("_TAG") or name == "REVIEW"}
    found = []
    for folder in ("src", "components", "pipelines"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "src" / "lethe" / "registry" / "tags.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and node.value in names - {"review"}:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert found == []


def test_lineage_is_cumulative_and_a_champion_never_unforgets() -> None:
    lineage = Lineage.of("2", ("r1", "r2"), ["r3", "r1", "r3"])
    assert lineage.request_ids == ("r1", "r2", "r3") and lineage.new_request_ids == ("r3",)
    assert may_promote(lineage.request_ids, ("r1", "r2")) and not may_promote(("r1",), ("r1", "r2"))
    document = json.loads(lineage.document(model_name="m", scenario="subject",
                                           gate=PromotionDecision(False, ("too high",)), alpha=3.0))
    assert document["new_request_ids"] == ["r3"] and document["alpha"] == 3.0
    assert document["gate"] == {"passed": False, "reasons": ["too high"]}


def test_a_decision_replaces_the_line_that_awaits_it() -> None:
    text = describe(parent="1", scenario="subject", alpha=12.5, lam=1.0, method="lfssd", total=2, new=1,
                    gate=PromotionDecision.of({"passed": False, "reasons": ["x"]}), metrics={"a": 0.5},
                    importances_uri=None, promoted=False)
    assert AWAITS_REVIEW in text and "with LFSSD (α=12.5, λ=1)" in text
    reviewed = reviewed_description(text, "approved", "Dana", "2025-01-01T00:00:00+00:00", "checked")
    assert AWAITS_REVIEW not in reviewed and "Approved by Dana" in reviewed
    line = text.split("\n").index(AWAITS_REVIEW)  # replaced where it stood
    assert reviewed.split("\n")[line].endswith("checked (promoted to champion).")
