"""What lethe records on an MLflow model version, typed: its tags' values and their parsing.

The tags' names are `lethe.registry.tags`'s. A version's tags are strings; `VersionMetadata.from_tags`
parses them (a malformed one is a one-line `RegistryError` naming the tag) and `to_tags` writes
them, so a version registered by an older lethe reads the same.

This module imports neither MLflow nor torch: readers of a version's tags (the CLI's review table,
the audit steps) import it alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from lethe.errors import RegistryError
from lethe.registry.tags import (
    ALPHA_TAG,
    GATE_REASONS_MAX,
    GATE_REASONS_TAG,
    GATE_TAG,
    IMPORTANCES_SHA256_TAG,
    IMPORTANCES_URI_TAG,
    LADDER_TAG,
    LAMBDA_TAG,
    LETHE_VERSION_TAG,
    METHOD_TAG,
    MODEL_FINGERPRINT_TAG,
    MODEL_MANIFEST_TAG,
    MODEL_TAGS_PREFIX,
    NEW_REQUEST_IDS_TAG,
    PARENT_VERSION_TAG,
    REMEDY_TAG,
    REQUEST_COUNT_TAG,
    REQUEST_IDS_TAG,
    REVIEW,
    REVIEW_AT_TAG,
    REVIEW_BY_TAG,
    REVIEW_REASON_TAG,
    RUN_TAG,
    RUNGS_TAG,
    SCENARIO_TAG,
    SERVING_MANIFEST_TAG,
    read_long,
    write_long,
)


class VersionMetadata(BaseModel):
    """The lethe tags of a model version, typed. `request_ids` are cumulative (the parent's too)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scenario: str | None = None
    parent_version: str | None = None
    request_ids: tuple[str, ...] = ()
    new_request_ids: tuple[str, ...] = ()
    gate: Literal["pass", "fail"] | None = None
    gate_reasons: str = ""
    model_fingerprint: str | None = None
    model_manifest: dict[str, str] = {}
    serving_manifest: dict[str, str] | None = None
    lethe_version: str | None = None
    run_key: str | None = None
    importances_uri: str | None = None
    importances_sha256: str | None = None
    alpha: float | None = None
    lam: float | None = None
    method: str | None = None
    remedy: str | None = None
    rungs: tuple[str, ...] = ()  # the ladder's rungs that made it (none recorded: dampening alone)
    ladder: str | None = None  # JSON: each rung's method, cost and verdict
    review: Literal["pending", "approved", "rejected"] | None = None
    review_by: str | None = None
    review_reason: str | None = None
    review_at: str | None = None

    # --- writing -------------------------------------------------------------------------------------

    def to_tags(self) -> dict[str, str]:
        """The version's tags, as MLflow stores them (the keys lethe has always written)."""
        tags: dict[str, str] = {
            SCENARIO_TAG: self.scenario or "",
            PARENT_VERSION_TAG: self.parent_version or "",
            REQUEST_COUNT_TAG: str(len(self.request_ids)),
            GATE_TAG: self.gate or "",
            GATE_REASONS_TAG: self.gate_reasons[:GATE_REASONS_MAX],
            MODEL_FINGERPRINT_TAG: self.model_fingerprint or "",
            MODEL_MANIFEST_TAG: json.dumps(self.model_manifest, sort_keys=True),
            LETHE_VERSION_TAG: self.lethe_version or "",
        }
        write_long(tags, REQUEST_IDS_TAG, ",".join(self.request_ids))
        write_long(tags, NEW_REQUEST_IDS_TAG, ",".join(self.new_request_ids))
        optional = {RUN_TAG: self.run_key, IMPORTANCES_URI_TAG: self.importances_uri,
                    IMPORTANCES_SHA256_TAG: self.importances_sha256, ALPHA_TAG: self.alpha,
                    LAMBDA_TAG: self.lam, METHOD_TAG: self.method, REMEDY_TAG: self.remedy,
                    REVIEW: self.review, REVIEW_BY_TAG: self.review_by, REVIEW_REASON_TAG: self.review_reason,
                    REVIEW_AT_TAG: self.review_at}
        tags.update({key: str(value) for key, value in optional.items() if value is not None})
        if self.rungs:
            tags[RUNGS_TAG] = ",".join(self.rungs)
        if self.ladder is not None:
            write_long(tags, LADDER_TAG, self.ladder)
        if self.serving_manifest is not None:
            tags[SERVING_MANIFEST_TAG] = json.dumps(self.serving_manifest, sort_keys=True)
        return tags

    @staticmethod
    def run_tags(tags: Mapping[str, str]) -> dict[str, str]:
        """The tags the version's run carries too: short ones, not those of the model files."""
        return {key: value for key, value in tags.items()
                if len(value) <= GATE_REASONS_MAX and not key.startswith(MODEL_TAGS_PREFIX)}

    # --- reading -------------------------------------------------------------------------------------

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> VersionMetadata:
        """Parse a version's tags (any other tags are ignored); a malformed one is a `RegistryError`."""
        fields: dict[str, Any] = {
            "request_ids": _ids(read_long(tags, REQUEST_IDS_TAG)),
            "new_request_ids": _ids(read_long(tags, NEW_REQUEST_IDS_TAG)),
            "gate_reasons": tags.get(GATE_REASONS_TAG, ""),
            "model_manifest": _json(tags, MODEL_MANIFEST_TAG) or {},
            "serving_manifest": _json(tags, SERVING_MANIFEST_TAG),
            "rungs": _ids(tags.get(RUNGS_TAG, "")),
            "ladder": read_long(tags, LADDER_TAG) or None,
        }
        for name, key in _TEXT_TAGS.items():  # "" is how an absent value was written
            fields[name] = tags.get(key) or None
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            error = exc.errors()[0]
            name = str(error["loc"][0]) if error.get("loc") else "?"
            key = _TEXT_TAGS.get(name) or {"model_manifest": MODEL_MANIFEST_TAG,
                                          "serving_manifest": SERVING_MANIFEST_TAG}.get(name, name)
            raise RegistryError(f"the version tag {key} is malformed: {error.get('msg', 'invalid')} "
                                f"({str(tags.get(key, ''))[:60]!r})") from None


#: Field -> tag, for the tags that hold one plain value.
_TEXT_TAGS = {"scenario": SCENARIO_TAG, "parent_version": PARENT_VERSION_TAG, "gate": GATE_TAG,
              "model_fingerprint": MODEL_FINGERPRINT_TAG, "lethe_version": LETHE_VERSION_TAG,
              "run_key": RUN_TAG, "importances_uri": IMPORTANCES_URI_TAG,
              "importances_sha256": IMPORTANCES_SHA256_TAG, "alpha": ALPHA_TAG, "lam": LAMBDA_TAG,
              "method": METHOD_TAG, "remedy": REMEDY_TAG, "review": REVIEW, "review_by": REVIEW_BY_TAG,
              "review_reason": REVIEW_REASON_TAG, "review_at": REVIEW_AT_TAG}


def _ids(text: str) -> tuple[str, ...]:
    return tuple(i for i in text.split(",") if i)


def _json(tags: Mapping[str, str], key: str) -> Any:
    if key not in tags:
        return None
    try:
        return json.loads(tags[key])
    except ValueError:
        raise RegistryError(f"the version tag {key} is malformed: not JSON ({tags[key][:60]!r})") from None


@dataclass(frozen=True)
class PromotionDecision:
    """What the registry records of the gate: may the version become champion, and why (not).

    (The gate's full verdict, with its checks, is `lethe.evaluation.GateDecision`.)"""

    passed: bool
    reasons: tuple[str, ...] = ()

    @classmethod
    def of(cls, value: Any) -> PromotionDecision:
        """From a PromotionDecision, a mapping {"passed", "reasons"} or any object with those attributes."""
        if isinstance(value, PromotionDecision):
            return value
        get = value.get if isinstance(value, Mapping) else lambda k, d=None: getattr(value, k, d)
        passed = get("passed")
        if not isinstance(passed, bool):
            raise RegistryError("a gate decision needs a boolean 'passed'")
        reasons = get("reasons", ()) or ()
        return cls(passed, (reasons,) if isinstance(reasons, str) else tuple(str(r) for r in reasons))

    @property
    def tag(self) -> Literal["pass", "fail"]:
        return "pass" if self.passed else "fail"


@dataclass(frozen=True)
class VersionInfo:
    """A registered version as lethe reads it: MLflow's fields, its raw tags and their typed `metadata`."""

    name: str
    version: str
    run_id: str | None
    created: datetime
    description: str
    tags: dict[str, str] = field(default_factory=dict)
    is_champion: bool = False

    @cached_property
    def metadata(self) -> VersionMetadata:
        return VersionMetadata.from_tags(self.tags)

    @property
    def request_ids(self) -> tuple[str, ...]:
        return self.metadata.request_ids

    @property
    def parent_version(self) -> str | None:
        return self.metadata.parent_version

    @property
    def gate(self) -> str | None:
        return self.metadata.gate

    @property
    def review(self) -> str | None:
        return self.metadata.review
