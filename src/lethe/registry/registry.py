"""Model versions in the MLflow registry: reading them, registering one, the `champion` alias, review.

A version is a run that holds the model (`model/`, lethe's flavour: `lethe.registry.flavor`) and the
evidence (`evidence/`: metrics.json, report.html, plots, lineage.json), registered under the model
name with lethe's tags (`lethe.registry.metadata`). `champion` moves only when the gate passes, or
when a reviewer approves, and never to a version that honours fewer requests than the champion
(`lethe.registry.lineage`); a version that fails the gate is tagged `review=pending`. Its
description (`lethe.registry.description`) says so in words, and nothing personal reaches MLflow
(`lethe.registry.privacy`). This class only sequences those modules' parts over MLflow's client.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

import lethe
from lethe.config import settings
from lethe.errors import RegistryError
from lethe.nested import flatten
from lethe.registry import flavor
from lethe.registry.client import ensure_experiment, get_client, mlflow_errors
from lethe.registry.description import AWAITS_REVIEW, CHAMPION_MOVED_ON, describe, reviewed_description
from lethe.registry.flavor import EVIDENCE_PATH, MODEL_PATH
from lethe.registry.lineage import LINEAGE_FILE, Lineage, may_promote
from lethe.registry.metadata import PromotionDecision, VersionInfo, VersionMetadata
from lethe.registry.privacy import PrivacyGuard, check_registration
from lethe.registry.review import decide
from lethe.registry.tags import (
    CHAMPION,
    DRIFT_TAG,
    MODEL_NAME_PATTERN,
    PREFIX,
    REVIEW,
    RUN_TAG,
    SERVING_MANIFEST_TAG,
)

# Names other modules imported from here before the roles moved out.
__all__ = ["AWAITS_REVIEW", "CHAMPION", "CHAMPION_MOVED_ON", "DEFAULT_EXPERIMENT", "EVIDENCE_PATH",
           "MODEL_PATH", "PREFIX", "REVIEW", "RUN_TAG", "SERVING_MANIFEST_TAG", "PromotionDecision",
           "Registry", "VersionInfo", "check_model_name", "describe", "reviewed_description"]

DEFAULT_EXPERIMENT = "lethe"
#: The note MLflow's UI shows on a run: the version's description.
NOTE_TAG = "mlflow.note.content"
PARAM_MAX = 6000  # characters of a param's value (MLflow's limit)
# A registered model name: checked before anything is sent (MLflow refuses some names only after a
# run was created), and never a path ("../../x").
MODEL_NAME = re.compile(MODEL_NAME_PATTERN)


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name) or ".." in name:
        raise RegistryError(f"invalid model name {str(name)[:60]!r}: use letters, digits, '_', '.' and '-' "
                            "(starting with a letter or digit)")
    return name


#: What a version's ladder tag keeps of each rung (the requests' outcomes stay in the evidence).
RUNG_TAG_KEYS = ("rung", "method", "decision", "refusals", "share_of_recipe", "budget", "sample_steps",
                 "stopped", "seconds", "flagged_share", "flagged_ci", "test_accuracy")


def _rung_tag(rung: Mapping[str, Any]) -> dict[str, Any]:
    return {key: rung[key] for key in RUNG_TAG_KEYS if rung.get(key) is not None}


def _numeric(values: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a nested mapping, by dotted key (MLflow metrics)."""
    out = {}
    for key, value in flatten(values, ".").items():
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, (int, float)) and math.isfinite(float(value)):
            out[key] = float(value)
    return out


def _run_params(params: Mapping[str, Any], **knobs: Any) -> dict[str, str]:
    """The run's params: the caller's, flattened, plus the knobs (alpha, lambda, ...) it did not set."""
    flat = {k: str(v) for k, v in flatten(params, ".").items()}
    for key, value in knobs.items():
        if value is not None:
            flat.setdefault("lambda" if key == "lam" else key, str(value))
    return flat


def _evidence_dir(out: Path, evidence: Sequence[Path], lineage: str) -> Path:
    """The run's `evidence/`: the caller's files and folders, and lineage.json."""
    out.mkdir()
    for path in evidence:
        copy = shutil.copytree if path.is_dir() else shutil.copy2
        copy(path, out / path.name)
    (out / LINEAGE_FILE).write_text(lineage)
    return out


class Registry:
    """lethe's view of one registered model (default `settings().model_name`) in MLflow."""

    def __init__(self, tracking_uri: str | None = None, model_name: str | None = None, *,
                 experiment: str = DEFAULT_EXPERIMENT) -> None:
        self.tracking_uri = tracking_uri or settings().tracking
        self.model_name = check_model_name(model_name or settings().model_name)
        self.experiment = experiment
        self.client = get_client(self.tracking_uri)
        self._experiment_id: str | None = None

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        return mlflow_errors(self.tracking_uri)

    # --- reading ----------------------------------------------------------------------------

    def _info(self, mv: ModelVersion, champion: str | None = None) -> VersionInfo:
        """`champion`: the champion's version when known; else the version's own aliases tell
        (MLflow fills them in when getting one version, not when searching)."""
        is_champion = str(mv.version) == champion if champion is not None else CHAMPION in (mv.aliases or ())
        return VersionInfo(name=mv.name, version=str(mv.version), run_id=mv.run_id,
                           created=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC),
                           description=mv.description or "", tags=dict(mv.tags or {}),
                           is_champion=is_champion)

    def _champion(self) -> ModelVersion | None:
        with self._errors():
            try:
                return self.client.get_model_version_by_alias(self.model_name, CHAMPION)
            except MlflowException as exc:
                if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    return None
                raise

    def _champion_request_ids(self) -> tuple[str, ...]:
        champion = self._champion()
        return self._info(champion).request_ids if champion is not None else ()

    def champion_version(self) -> str | None:
        champion = self._champion()
        return str(champion.version) if champion is not None else None

    def promotion_blocked(self) -> bool:
        """Whether a drift check found a champion that does not honour every fulfilled request and no
        reviewer has confirmed it yet (`lethe.retention.drift`): no version is promoted meanwhile."""
        with self._errors():
            try:
                tags = self.client.get_registered_model(self.model_name).tags or {}
            except MlflowException:
                return False
        return bool(tags.get(DRIFT_TAG))

    def version(self, version: str | int) -> VersionInfo:
        with self._errors():
            try:
                mv = self.client.get_model_version(self.model_name, str(version))
            except MlflowException as exc:
                if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    raise RegistryError(f"no version {version} of model {self.model_name}") from exc
                raise
        return self._info(mv)

    def versions(self) -> list[VersionInfo]:
        found: list[ModelVersion] = []
        token = None
        with self._errors():
            while True:
                page = self.client.search_model_versions(f"name='{self.model_name}'", page_token=token)
                found.extend(page)
                token = page.token
                if not token:
                    break
        champion = self.champion_version()
        return sorted((self._info(mv, champion) for mv in found), key=lambda v: int(v.version))

    def version_of_run(self, run_key: str) -> VersionInfo | None:
        """The version registered by pipeline run `run_key` (its RUN_TAG), or None."""
        if not run_key or "'" in run_key or "`" in run_key:
            raise RegistryError(f"invalid run id {run_key[:60]!r}")
        with self._errors():
            found = self.client.search_model_versions(
                f"name='{self.model_name}' and tags.`{RUN_TAG}` = '{run_key}'")
        if not found:
            return None
        return self.version(min(found, key=lambda mv: int(mv.version)).version)

    def pending_reviews(self) -> list[VersionInfo]:
        return [v for v in self.versions() if v.review == "pending"]

    def resolve(self, ref: str | int) -> VersionInfo:
        """`models:/NAME@alias`, `models:/NAME/3`, `@alias`, `champion` or a version number."""
        text = str(ref).strip()
        name = self.model_name
        if text.startswith("models:/"):
            body = text.removeprefix("models:/")
            name, sep, rest = body.partition("@") if "@" in body else body.rpartition("/")
            text = f"@{rest}" if sep == "@" else rest
        if name != self.model_name:
            return Registry(self.tracking_uri, name, experiment=self.experiment).resolve(text)
        if text.startswith("@") or text == CHAMPION:
            alias = text.lstrip("@")
            with self._errors():
                try:
                    mv = self.client.get_model_version_by_alias(self.model_name, alias)
                except MlflowException as exc:
                    raise RegistryError(f"model {self.model_name} has no version with alias "
                                        f"{alias!r}") from exc
            return self._info(mv)
        if not text.isdigit():
            raise RegistryError(f"cannot read model reference {ref!r}: use models:/NAME@ALIAS, "
                                "models:/NAME/VERSION or a version number")
        return self.version(text)

    def _run_of(self, ref: str | int) -> tuple[VersionInfo, str]:
        info = self.resolve(ref)
        if not info.run_id:
            raise RegistryError(f"version {info.version} of {info.name} has no run to download from")
        return info, f"{info.name} version {info.version}"

    def download_model(self, ref: str | int, dest_dir: str | Path) -> Path:
        """Download a version's lethe model directory into `dest_dir` and verify its files."""
        info, what = self._run_of(ref)
        with self._errors():
            return flavor.download_model(self.client, info.run_id, info.metadata, Path(dest_dir), what=what)

    def load_model(self, ref: str | int = CHAMPION) -> tuple[Any, Any]:
        """(nn.Module, ModelCard) of a registered version, through `lethe.models.load_model`."""
        info, what = self._run_of(ref)
        with self._errors():
            return flavor.load_model(self.client, info.run_id, info.metadata, what=what)

    # --- writing ----------------------------------------------------------------------------

    def register_version(
        self,
        model_dir: str | Path,
        *,
        gate: Any,
        scenario: str,
        parent_version: str | int | None = None,
        request_ids: Sequence[str] = (),
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        evidence: Iterable[str | Path] = (),
        importances_uri: str | None = None,
        importances_sha256: str | None = None,
        alpha: float | None = None,
        lam: float | None = None,
        method: str | None = None,
        forbidden: Iterable[str] = (),
        run_name: str | None = None,
        run_key: str | None = None,
        ladder: Sequence[Mapping[str, Any]] = (),
    ) -> VersionInfo:
        """Log a run (params, metrics, evidence, model dir) and register it as a new version.

        `request_ids` are the requests this version newly honours; the version records them plus
        its parent's (cumulative). `forbidden`: subject ids, their hashes and sample ids that must
        not reach MLflow; anything matching them (or shaped like a sample id) is refused before
        anything is sent. `ladder`: the rungs that made the candidate (`lethe.steps.ladder`), named in
        its tags and description. `champion` moves here only when `gate` passed. `run_key`: the pipeline run
        registering it (tag RUN_TAG); when a version of that run exists it is returned instead, with
        a promotion that failed half-way completed, so a retried step registers nothing twice.
        """
        gate = PromotionDecision.of(gate)
        if run_key:  # idempotent per pipeline run: a retried step finds what it registered
            existing = self.version_of_run(run_key)
            if existing is not None:
                return self._finish_registration(existing)
        model_dir = Path(model_dir)
        card = flavor.verify_model_dir(model_dir)
        evidence_paths = [Path(p) for p in evidence]
        missing = [str(p) for p in evidence_paths if not p.exists()]
        if missing:
            raise RegistryError(f"evidence not found: {', '.join(missing)}")

        parent = self.version(parent_version) if parent_version is not None else None
        lineage = Lineage.of(parent.version if parent else None, parent.request_ids if parent else (),
                             request_ids)
        # An unlearned model's card names its importance method: the version records what was run.
        method = method or (card.extra.get("unlearning") or {}).get("method") or None
        # Promote only what passed the gate and forgets at least everything the champion forgot.
        promote = gate.passed and may_promote(lineage.request_ids, self._champion_request_ids()) \
            and not self.promotion_blocked()
        metadata = VersionMetadata(
            scenario=scenario, parent_version=lineage.parent_version, request_ids=lineage.request_ids,
            new_request_ids=lineage.new_request_ids, gate=gate.tag, gate_reasons="; ".join(gate.reasons),
            model_fingerprint=card.fingerprint, model_manifest=flavor.files_manifest(model_dir),
            lethe_version=lethe.__version__, run_key=run_key or None, importances_uri=importances_uri,
            importances_sha256=importances_sha256, alpha=alpha, lam=lam, method=method,
            rungs=tuple(str(r.get("rung")) for r in ladder),
            ladder=json.dumps([_rung_tag(r) for r in ladder], sort_keys=True) if ladder else None,
            review=None if promote else "pending")
        numeric = _numeric(metrics or {})
        run_params = _run_params(params or {}, alpha=alpha, lam=lam, method=method, scenario=scenario)
        description = describe(
            parent=lineage.parent_version, scenario=scenario, alpha=alpha, lam=lam, method=method,
            total=len(lineage.request_ids), new=len(lineage.new_request_ids), gate=gate, metrics=numeric,
            importances_uri=importances_uri, promoted=promote, ladder=ladder)
        run_name = run_name or f"{scenario}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
        guard = PrivacyGuard(forbidden)
        check_registration(guard, params=run_params, tags=metadata.to_tags(), metric_names=numeric,
                           description=description, run_name=run_name,
                           files=[*flavor.model_files(model_dir), *evidence_paths])

        with tempfile.TemporaryDirectory(prefix="lethe-evidence-") as tmp:
            # Only the model's own files go up: anything else in its directory (a subject map, a copy
            # of the ledger, notes) stays behind.
            model_dir = flavor.copy_model_files(model_dir, Path(tmp) / "model")
            served_dir = Path(tmp) / "served"
            with self._errors():  # MLflow's own failures building its model: one line, like the rest
                serving_manifest = flavor.save_model(model_dir, served_dir)
            guard.check_files([served_dir])
            evidence_dir = _evidence_dir(Path(tmp) / EVIDENCE_PATH, evidence_paths, lineage.document(
                model_name=self.model_name, scenario=scenario, gate=gate, importances_uri=importances_uri,
                importances_sha256=importances_sha256, alpha=alpha, **{"lambda": lam}, method=method))
            tags = metadata.model_copy(update={"serving_manifest": serving_manifest}).to_tags()
            return self._log_and_register(model_dir, served_dir, evidence_dir, run_params, numeric, tags,
                                          description, promote, run_name)

    def _finish_registration(self, info: VersionInfo) -> VersionInfo:
        """A version found by its run: complete a promotion that failed after the version was created
        (it passed the gate and was not marked for review, yet is not champion); else leave it."""
        if info.is_champion or info.review is not None or info.gate != "pass":
            return info
        with self._errors():
            if may_promote(info.request_ids, self._champion_request_ids()) and not self.promotion_blocked():
                self.client.set_registered_model_alias(self.model_name, CHAMPION, info.version)
            else:  # the champion moved on meanwhile: as register_version would have, leave it to review
                self.client.set_model_version_tag(self.model_name, info.version, REVIEW, "pending")
        return self.version(info.version)

    def _log_and_register(self, model_dir: Path, served_dir: Path, evidence_dir: Path, params: dict[str, str],
                          metrics: dict[str, float], tags: dict[str, str], description: str, promote: bool,
                          run_name: str) -> VersionInfo:
        with self._errors():
            if self._experiment_id is None:
                self._experiment_id = ensure_experiment(self.client, self.experiment, self.tracking_uri)
            run = self.client.create_run(self._experiment_id, run_name=run_name,
                                         tags=VersionMetadata.run_tags(tags))
            run_id = run.info.run_id
            try:
                now = int(datetime.now(UTC).timestamp() * 1000)
                model = flavor.create_logged_model(self.client, run.info, self.model_name, tags)
                # MLflow's client splits the batch to its limits (100 params or tags, 1000 entities).
                self.client.log_batch(run_id, params=[Param(k, v[:PARAM_MAX]) for k, v in params.items()],
                                      metrics=[Metric(k, v, now, 0, model) for k, v in metrics.items()],
                                      tags=[RunTag(NOTE_TAG, description)])
                self.client.log_artifacts(run_id, str(evidence_dir), EVIDENCE_PATH)
                flavor.log_model(self.client, run_id, model_dir, served_dir)
                try:
                    self.client.get_registered_model(self.model_name)
                except MlflowException:
                    with contextlib.suppress(MlflowException):  # registered concurrently
                        self.client.create_registered_model(
                            self.model_name, description="Image classifier unlearned by lethe.")
                mv = self.client.create_model_version(
                    self.model_name, f"{run.info.artifact_uri}/{MODEL_PATH}", run_id=run_id, tags=tags,
                    description=description)  # not model_id: a server wants the source inside it
                flavor.finish_logged_model(self.client, model, self.model_name, str(mv.version))
                if promote:
                    self.client.set_registered_model_alias(self.model_name, CHAMPION, str(mv.version))
            except BaseException:
                self.client.set_terminated(run_id, "FAILED")
                raise
            self.client.set_terminated(run_id, "FINISHED")
        return VersionInfo(name=mv.name, version=str(mv.version), run_id=run_id,
                           created=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC),
                           description=mv.description or description, tags={**tags, **(mv.tags or {})},
                           is_champion=promote)

    # --- review -----------------------------------------------------------------------------

    def approve(self, version: str | int, *, by: str, reason: str, guard: PrivacyGuard | None = None
                ) -> VersionInfo:
        """A reviewer accepts a version that failed the gate: it becomes `champion`. `guard` checks
        `by` and `reason` before anything is sent (default: sample ids only)."""
        return decide(self, version, "approved", by=by, reason=reason, guard=guard)

    def reject(self, version: str | int, *, by: str, reason: str, guard: PrivacyGuard | None = None
               ) -> VersionInfo:
        """A reviewer refuses a version: `champion` stays; its requests go back to the queue."""
        return decide(self, version, "rejected", by=by, reason=reason, guard=guard)
