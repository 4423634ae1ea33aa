"""Model versions in the MLflow registry: evidence, lineage, the `champion` alias and review.

A version is a run that holds the lethe model directory (`model/`: model.safetensors +
model.json, loadable by `lethe.models.load_model` and unlearnable again) and the evidence
(`evidence/`: metrics.json, report.html, plots, lineage.json), registered under the model name
with lineage tags (`lethe.*`). `champion` moves only when the gate passes, or when a reviewer
approves; a version that fails the gate is tagged `review=pending`.

`champion` never moves to a version that honours fewer requests than the current champion: a
version computed from an older champion must be re-run, not promoted (it would un-forget).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

import lethe
from lethe.config import settings
from lethe.errors import IntegrityError, RegistryError
from lethe.nested import flatten
from lethe.registry.client import ensure_experiment, get_client, mlflow_errors, quiet_mlflow
from lethe.registry.privacy import PrivacyGuard
from lethe.storage import sha256_file
from lethe.storage.uris import SIDECAR_SUFFIX

CHAMPION = "champion"
DEFAULT_EXPERIMENT = "lethe"
MODEL_PATH = "model"
EVIDENCE_PATH = "evidence"
REVIEW = "review"  # tag: pending | approved | rejected
PREFIX = "lethe."
RUN_TAG = f"{PREFIX}run_id"  # version tag: the pipeline run that registered it (a retry finds it)
# Version tag: sha256 of the MLflow model files (MLmodel, TorchScript, ...) logged beside lethe's.
SERVING_MANIFEST_TAG = f"{PREFIX}model_serving_manifest"
_TAG_CHUNK = 50_000  # MLflow allows 100k characters per version tag; lists longer than this are split
# A registered model name: checked before anything is sent (MLflow refuses some names only after a
# run was created), and never a path ("../../x").
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name) or ".." in name:
        raise RegistryError(f"invalid model name {str(name)[:60]!r}: use letters, digits, '_', '.' and '-' "
                            "(starting with a letter or digit)")
    return name


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


@dataclass(frozen=True)
class VersionInfo:
    """A registered version as lethe reads it."""

    name: str
    version: str
    run_id: str | None
    created: datetime
    description: str
    tags: dict[str, str] = field(default_factory=dict)
    is_champion: bool = False

    @property
    def request_ids(self) -> tuple[str, ...]:
        return tuple(i for i in _read_long(self.tags, f"{PREFIX}request_ids").split(",") if i)

    @property
    def parent_version(self) -> str | None:
        return self.tags.get(f"{PREFIX}parent_version") or None

    @property
    def gate(self) -> str | None:
        return self.tags.get(f"{PREFIX}gate")

    @property
    def review(self) -> str | None:
        return self.tags.get(REVIEW)


def _write_long(tags: dict[str, str], key: str, value: str) -> None:
    chunks = [value[i:i + _TAG_CHUNK] for i in range(0, len(value), _TAG_CHUNK)] or [""]
    tags[key] = chunks[0]
    for index, chunk in enumerate(chunks[1:], start=2):
        tags[f"{key}.{index}"] = chunk


def _read_long(tags: Mapping[str, str], key: str) -> str:
    parts, index = [tags.get(key, "")], 2
    while f"{key}.{index}" in tags:
        parts.append(tags[f"{key}.{index}"])
        index += 1
    return "".join(parts)


def _numeric(values: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in flatten(values, ".").items():
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, (int, float)) and math.isfinite(float(value)):
            out[key] = float(value)
    return out


def _manifest(model_dir: Path) -> dict[str, str]:
    return {p.relative_to(model_dir).as_posix(): sha256_file(p)
            for p in sorted(model_dir.rglob("*")) if p.is_file()}


def _fmt(value: float) -> str:
    return f"{value:.4g}"


# The description's promotion line of a version awaiting review; a decision replaces it.
AWAITS_REVIEW = "Not promoted: waits for a reviewer (`lethe review approve|reject`)."
CHAMPION_MOVED_ON = "Not promoted: the champion moved on; re-run from the current champion."


def reviewed_description(description: str, decision: str, by: str, at: str, reason: str) -> str:
    """The description after a reviewer's decision: the line saying it waits for one is replaced by
    the decision (appended when no such line is there), so the description stays true."""
    outcome = "promoted to champion" if decision == "approved" else "not promoted"
    line = f"{decision.capitalize()} by {by} at {at}: {reason} ({outcome})."
    lines = description.split("\n")
    for index, text in enumerate(lines):
        if text in (AWAITS_REVIEW, CHAMPION_MOVED_ON):
            lines[index] = line
            return "\n".join(lines)
    return f"{description}\n{line}" if description else line


def describe(*, parent: str | None, scenario: str, alpha: float | None, lam: float | None,
             method: str | None, total: int, new: int, gate: PromotionDecision, metrics: Mapping[str, float],
             importances_uri: str | None, promoted: bool) -> str:
    """The version's description: what it is, what it honours, why it was (not) promoted."""
    if parent is None:
        lines = [f"Base model (scenario: {scenario}); it honours no erasure request yet."]
    else:
        how = f" with {method.upper()}" if method else ""
        knobs = ", ".join(p for p in (f"α={_fmt(alpha)}" if alpha is not None else "",
                                      f"λ={_fmt(lam)}" if lam is not None else "") if p)
        lines = [f"Unlearned from version {parent}{how}" + (f" ({knobs})" if knobs else "")
                 + f"; scenario: {scenario}.",
                 f"Honours {total} erasure request(s), {new} new in this version."]
    verdict = "PASS" if gate.passed else "FAIL"
    lines.append(f"Gate: {verdict}" + (" — " + "; ".join(gate.reasons) if gate.reasons else "."))
    lines.append("Promoted to champion." if promoted
                 else AWAITS_REVIEW if not gate.passed else CHAMPION_MOVED_ON)
    if metrics:
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in list(metrics.items())[:16])
        lines.append(f"Metrics: {shown}.")
    if importances_uri:
        lines.append(f"Importances of the full data: {importances_uri}.")
    return "\n".join(lines)


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

    def champion_version(self) -> str | None:
        champion = self._champion()
        return str(champion.version) if champion is not None else None

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

    def download_model(self, ref: str | int, dest_dir: str | Path) -> Path:
        """Download a version's lethe model directory into `dest_dir` and verify its files."""
        info = self.resolve(ref)
        if not info.run_id:
            raise RegistryError(f"version {info.version} of {info.name} has no run to download from")
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="lethe-model-") as tmp, self._errors():
            expected = json.loads(info.tags.get(f"{PREFIX}model_manifest", "{}"))
            if expected and SERVING_MANIFEST_TAG in info.tags:
                # MLflow's model files (MLmodel, TorchScript, ...) sit beside lethe's: fetch lethe's only.
                local = Path(tmp) / MODEL_PATH
                with quiet_mlflow():  # else a progress bar per file
                    for name in expected:
                        into = (local / name).parent  # MLflow puts a file's download under its base name
                        into.mkdir(parents=True, exist_ok=True)
                        with contextlib.suppress(MlflowException, OSError):  # a missing file: refused below
                            self.client.download_artifacts(info.run_id, f"{MODEL_PATH}/{name}", str(into))
            else:
                local = Path(self.client.download_artifacts(info.run_id, MODEL_PATH, tmp))
            actual = _manifest(local)
            if expected and actual != expected:
                bad = sorted(k for k in set(expected) | set(actual) if expected.get(k) != actual.get(k))
                raise IntegrityError(f"model files of {info.name} version {info.version} differ from those "
                                     f"registered: {', '.join(bad)}")
            if expected and not any(name.endswith(SIDECAR_SUFFIX) for name in expected):
                # Registered before model directories had sidecars: the manifest recorded at
                # registration vouches for the files just checked against it.
                from lethe.models import write_sidecars

                write_sidecars(local, recorded=expected)
            for path in local.iterdir():
                target = dest_dir / path.name
                if target.is_dir():
                    shutil.rmtree(target)
                shutil.move(str(path), target)
        return dest_dir

    def load_model(self, ref: str | int = CHAMPION) -> tuple[Any, Any]:
        """(nn.Module, ModelCard) of a registered version, through `lethe.models.load_model`."""
        from lethe.models import load_model  # torch-heavy; only when a model is actually loaded

        with tempfile.TemporaryDirectory(prefix="lethe-model-") as tmp:
            return load_model(self.download_model(ref, tmp))

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
    ) -> VersionInfo:
        """Log a run (params, metrics, evidence, model dir) and register it as a new version.

        `request_ids` are the requests this version newly honours; the version records them plus
        its parent's (cumulative). `forbidden`: subject ids, their hashes and sample ids that must
        not reach MLflow; anything matching them (or shaped like a sample id) is refused before
        anything is sent. `champion` moves here only when `gate` passed. `run_key`: the pipeline run
        registering it (tag RUN_TAG); when a version of that run exists it is returned instead, with
        a promotion that failed half-way completed, so a retried step registers nothing twice.
        """
        gate = PromotionDecision.of(gate)
        if run_key:  # idempotent per pipeline run: a retried step finds what it registered
            existing = self.version_of_run(run_key)
            if existing is not None:
                return self._finish_registration(existing)
        model_dir = Path(model_dir)
        if not (model_dir / "model.safetensors").is_file() or not (model_dir / "model.json").is_file():
            raise RegistryError(f"{model_dir} is not a lethe model directory "
                                "(model.safetensors + model.json)")
        from lethe.models import verify_model_dir  # torch loads only when a version is registered

        # What every later run would refuse (sidecars, shapes, NaN, fingerprint) is refused now.
        verify_model_dir(model_dir)
        evidence_paths = [Path(p) for p in evidence]
        missing = [str(p) for p in evidence_paths if not p.exists()]
        if missing:
            raise RegistryError(f"evidence not found: {', '.join(missing)}")

        parent = self.version(parent_version) if parent_version is not None else None
        cumulative = list(dict.fromkeys([*(parent.request_ids if parent else ()), *map(str, request_ids)]))
        inherited = set(parent.request_ids) if parent else set()
        new_ids = [i for i in dict.fromkeys(map(str, request_ids)) if i not in inherited]
        numeric = _numeric(metrics or {})
        card = json.loads((model_dir / "model.json").read_text())
        # An unlearned model's card names its importance method: the version records what was run.
        method = method or (card.get("unlearning") or {}).get("method") or None
        flat_params = {k: str(v) for k, v in flatten(params or {}, ".").items()}
        for key, value in (("alpha", alpha), ("lambda", lam), ("method", method), ("scenario", scenario)):
            if value is not None:
                flat_params.setdefault(key, str(value))
        manifest = _manifest(model_dir)

        tags: dict[str, str] = {
            f"{PREFIX}scenario": scenario,
            f"{PREFIX}parent_version": parent.version if parent else "",
            f"{PREFIX}request_count": str(len(cumulative)),
            f"{PREFIX}gate": "pass" if gate.passed else "fail",
            f"{PREFIX}gate_reasons": "; ".join(gate.reasons)[:8000],
            f"{PREFIX}model_fingerprint": str(card.get("fingerprint", "")),
            f"{PREFIX}model_manifest": json.dumps(manifest, sort_keys=True),
            f"{PREFIX}lethe_version": lethe.__version__,
        }
        _write_long(tags, f"{PREFIX}request_ids", ",".join(cumulative))
        _write_long(tags, f"{PREFIX}new_request_ids", ",".join(new_ids))
        if run_key:
            tags[RUN_TAG] = run_key
        for key, value in ((f"{PREFIX}importances_uri", importances_uri),
                           (f"{PREFIX}importances_sha256", importances_sha256),
                           (f"{PREFIX}alpha", alpha), (f"{PREFIX}lambda", lam), (f"{PREFIX}method", method)):
            if value is not None:
                tags[key] = str(value)

        champion = self._champion()
        champion_ids = set(self._info(champion).request_ids) if champion is not None else set()
        # Promote only what passed the gate and forgets at least everything the champion forgot.
        promote = gate.passed and champion_ids <= set(cumulative)
        if not promote:
            tags[REVIEW] = "pending"
        description = describe(parent=parent.version if parent else None, scenario=scenario, alpha=alpha,
                               lam=lam, method=method, total=len(cumulative), new=len(new_ids), gate=gate,
                               metrics=numeric, importances_uri=importances_uri, promoted=promote)
        lineage = {"model_name": self.model_name, "parent_version": parent.version if parent else None,
                   "request_ids": cumulative, "new_request_ids": new_ids, "scenario": scenario,
                   "importances_uri": importances_uri, "importances_sha256": importances_sha256,
                   "alpha": alpha, "lambda": lam, "method": method,
                   "gate": {"passed": gate.passed, "reasons": list(gate.reasons)}}

        guard = PrivacyGuard(forbidden)
        for key, value in {**flat_params, **tags}.items():
            guard.check_text(f"{key}={value}", f"'{key}'")
        for key in numeric:
            guard.check_text(key, f"the metric '{key}'")
        guard.check_text(description, "the description")
        run_name = run_name or f"{scenario}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
        guard.check_text(run_name, "the run name")
        guard.check_files([model_dir, *evidence_paths])

        with tempfile.TemporaryDirectory(prefix="lethe-evidence-") as tmp:
            with self._errors():  # MLflow's own failures building its model: one line, like the rest
                served_dir = self._served_model(model_dir, Path(tmp) / "served", guard)
            tags[SERVING_MANIFEST_TAG] = json.dumps(_manifest(served_dir), sort_keys=True)
            evidence_dir = Path(tmp) / EVIDENCE_PATH
            evidence_dir.mkdir()
            for path in evidence_paths:
                copy = shutil.copytree if path.is_dir() else shutil.copy2
                copy(path, evidence_dir / path.name)
            (evidence_dir / "lineage.json").write_text(json.dumps(lineage, indent=2) + "\n")
            return self._log_and_register(model_dir, served_dir, evidence_dir, flat_params, numeric, tags,
                                          description, promote, run_name)

    @staticmethod
    def _served_model(model_dir: Path, out_dir: Path, guard: PrivacyGuard) -> Path:
        """The MLflow pyfunc (MLmodel at the root) logged beside lethe's files, so that
        `models:/NAME@champion` loads and serves without lethe (`lethe.registry.serving`)."""
        from lethe.registry.serving import save_served_model  # torch-heavy

        files = save_served_model(model_dir, out_dir)
        clash = sorted({f.split("/")[0] for f in files} & {p.name for p in model_dir.iterdir()})
        if clash:
            raise RegistryError(f"{model_dir} already holds files of an MLflow model ({', '.join(clash)}): "
                                "register a lethe model directory without them")
        guard.check_files([out_dir])
        return out_dir

    def _finish_registration(self, info: VersionInfo) -> VersionInfo:
        """A version found by its run: complete a promotion that failed after the version was created
        (it passed the gate and was not marked for review, yet is not champion); else leave it."""
        if info.is_champion or info.review is not None or info.gate != "pass":
            return info
        champion = self._champion()
        champion_ids = set(self._info(champion).request_ids) if champion is not None else set()
        with self._errors():
            if champion_ids <= set(info.request_ids):
                self.client.set_registered_model_alias(self.model_name, CHAMPION, info.version)
            else:  # the champion moved on meanwhile: as register_version would have, leave it to review
                self.client.set_model_version_tag(self.model_name, info.version, REVIEW, "pending")
        return self.version(info.version)

    def _log_and_register(self, model_dir: Path, served_dir: Path, evidence_dir: Path, params: dict[str, str],
                          metrics: dict[str, float], tags: dict[str, str], description: str, promote: bool,
                          run_name: str) -> VersionInfo:
        run_tags = {k: v for k, v in tags.items() if len(v) <= 8000 and not k.startswith(f"{PREFIX}model_")}
        with self._errors():
            if self._experiment_id is None:
                self._experiment_id = ensure_experiment(self.client, self.experiment, self.tracking_uri)
            run = self.client.create_run(self._experiment_id, run_name=run_name, tags=run_tags)
            run_id = run.info.run_id
            try:
                now = int(datetime.now(UTC).timestamp() * 1000)
                items = [Param(k, v[:6000]) for k, v in params.items()]
                metric_items = [Metric(k, v, now, 0) for k, v in metrics.items()]
                note = [RunTag("mlflow.note.content", description)]
                # One request when it fits MLflow's batch limits (100 params, 1000 entities in all).
                while True:
                    params_now, items = items[:100], items[100:]
                    room = 999 - len(params_now)
                    metrics_now, metric_items = metric_items[:room], metric_items[room:]
                    self.client.log_batch(run_id, params=params_now, metrics=metrics_now, tags=note)
                    note = []
                    if not items and not metric_items:
                        break
                self.client.log_artifacts(run_id, str(evidence_dir), EVIDENCE_PATH)
                self.client.log_artifacts(run_id, str(model_dir), MODEL_PATH)
                self.client.log_artifacts(run_id, str(served_dir), MODEL_PATH)  # MLmodel beside lethe's
                try:
                    self.client.get_registered_model(self.model_name)
                except MlflowException:
                    with contextlib.suppress(MlflowException):  # registered concurrently
                        self.client.create_registered_model(
                            self.model_name, description="Image classifier unlearned by lethe.")
                mv = self.client.create_model_version(
                    self.model_name, f"{run.info.artifact_uri}/{MODEL_PATH}", run_id=run_id, tags=tags,
                    description=description)
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

    def _decide(self, version: str | int, decision: str, by: str, reason: str,
                guard: PrivacyGuard | None) -> VersionInfo:
        if not by.strip() or not reason.strip():
            raise RegistryError("a review decision needs --by NAME and --reason TEXT")
        guard = guard or PrivacyGuard()
        guard.check_text(by, "the reviewer's name")
        guard.check_text(reason, "the review reason")
        info = self.version(version)
        if info.review != "pending":
            raise RegistryError(f"version {info.version} of {self.model_name} is not awaiting review "
                                f"(review={info.review or 'none'})")
        if decision == "approved":
            champion = self.champion_version()
            if champion and champion != info.version:
                missing = set(self.version(champion).request_ids) - set(info.request_ids)
                if missing:
                    raise RegistryError(f"version {info.version} does not honour {len(missing)} request(s) "
                                        f"that the champion (version {champion}) honours; reject it and "
                                        "re-run")
        at = datetime.now(UTC).isoformat(timespec="seconds")
        with self._errors():
            # The alias first, the `review` tag last: the tag says the decision is complete, so a
            # failure in between leaves the version pending and the same command finishes it.
            if decision == "approved":
                self.client.set_registered_model_alias(self.model_name, CHAMPION, info.version)
            self.client.update_model_version(self.model_name, info.version,
                                             reviewed_description(info.description, decision, by, at, reason))
            for key, value in ((f"{REVIEW}.by", by), (f"{REVIEW}.reason", reason), (f"{REVIEW}.at", at),
                               (REVIEW, decision)):
                self.client.set_model_version_tag(self.model_name, info.version, key, value)
        return self.version(info.version)

    def approve(self, version: str | int, *, by: str, reason: str, guard: PrivacyGuard | None = None
                ) -> VersionInfo:
        """A reviewer accepts a version that failed the gate: it becomes `champion`. `guard` checks
        `by` and `reason` before anything is sent (default: sample ids only)."""
        return self._decide(version, "approved", by, reason, guard)

    def reject(self, version: str | int, *, by: str, reason: str, guard: PrivacyGuard | None = None
               ) -> VersionInfo:
        """A reviewer refuses a version: `champion` stays; its requests go back to the queue."""
        return self._decide(version, "rejected", by, reason, guard)
