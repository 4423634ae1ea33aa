"""The names of the tags lethe writes on an MLflow model version: every `lethe.*` tag literal of the
product lives here (`lethe.registry.metadata` parses and writes their values). Standard library only,
so that the CLI can name a tag without loading pydantic or MLflow.

Lists longer than one tag holds (MLflow: 100k characters per version tag) continue in `<key>.2`,
`<key>.3`, ...
"""

from __future__ import annotations

from collections.abc import Mapping

PREFIX = "lethe."
SCENARIO_TAG = f"{PREFIX}scenario"
PARENT_VERSION_TAG = f"{PREFIX}parent_version"
REQUEST_COUNT_TAG = f"{PREFIX}request_count"
REQUEST_IDS_TAG = f"{PREFIX}request_ids"
NEW_REQUEST_IDS_TAG = f"{PREFIX}new_request_ids"
GATE_TAG = f"{PREFIX}gate"  # pass | fail
GATE_REASONS_TAG = f"{PREFIX}gate_reasons"
MODEL_FINGERPRINT_TAG = f"{PREFIX}model_fingerprint"
#: sha256 of lethe's model files (model.safetensors, model.json, their sidecars), JSON.
MODEL_MANIFEST_TAG = f"{PREFIX}model_manifest"
#: sha256 of the MLflow model files (MLmodel, TorchScript, ...) logged beside lethe's, JSON.
SERVING_MANIFEST_TAG = f"{PREFIX}model_serving_manifest"
LETHE_VERSION_TAG = f"{PREFIX}lethe_version"
#: The pipeline run that registered the version (a retried step finds it).
RUN_TAG = f"{PREFIX}run_id"
IMPORTANCES_URI_TAG = f"{PREFIX}importances_uri"
IMPORTANCES_SHA256_TAG = f"{PREFIX}importances_sha256"
ALPHA_TAG = f"{PREFIX}alpha"
LAMBDA_TAG = f"{PREFIX}lambda"
METHOD_TAG = f"{PREFIX}method"
#: On the version's MLflow logged model: the registered version it became (`NAME/VERSION`).
VERSION_OF_TAG = f"{PREFIX}registered_version"
#: How the version was made when not by dampening (`retrain`).
REMEDY_TAG = f"{PREFIX}remedy"
#: The ladder's rungs that made the version, in order (`dampen,repair`), and each rung's method, cost and
#: the gate's verdict on its candidate (JSON; `lethe.steps.ladder`).
RUNGS_TAG = f"{PREFIX}rungs"
LADDER_TAG = f"{PREFIX}ladder"
REVIEW = "review"  # tag: pending | approved | rejected
REVIEW_BY_TAG, REVIEW_REASON_TAG, REVIEW_AT_TAG = f"{REVIEW}.by", f"{REVIEW}.reason", f"{REVIEW}.at"
#: The tags a run's copy leaves out: they describe the model files (and can be long).
MODEL_TAGS_PREFIX = f"{PREFIX}model_"
CHAMPION = "champion"
#: When a version's weights were deleted by the retention policy (`lethe.registry.retire`); metadata,
#: metrics and evidence stay.
RETIRED_TAG = f"{PREFIX}retired"
#: Registered-model tags of the drift check (`lethe.retention.drift`): the champion version found not to
#: honour every fulfilled request (promotion is refused while set), and the version a reviewer confirmed.
DRIFT_TAG = f"{PREFIX}drift"
CONFIRMED_CHAMPION_TAG = f"{PREFIX}confirmed_champion"
#: A registered model's name (checked before anything is sent, never a path); read by the pipeline
#: parameters' schema too, which must not load MLflow.
MODEL_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}"

LONG_TAG_CHUNK = 50_000  # characters per tag of a long list (MLflow allows 100k per version tag)
GATE_REASONS_MAX = 8000  # characters of the gate's reasons kept in their tag


def write_long(tags: dict[str, str], key: str, value: str) -> None:
    """`value` under `key`, continued in `key.2`, `key.3`, ... when longer than one tag holds."""
    chunks = [value[i:i + LONG_TAG_CHUNK] for i in range(0, len(value), LONG_TAG_CHUNK)] or [""]
    tags[key] = chunks[0]
    for index, chunk in enumerate(chunks[1:], start=2):
        tags[f"{key}.{index}"] = chunk


def read_long(tags: Mapping[str, str], key: str) -> str:
    parts, index = [tags.get(key, "")], 2
    while f"{key}.{index}" in tags:
        parts.append(tags[f"{key}.{index}"])
        index += 1
    return "".join(parts)
