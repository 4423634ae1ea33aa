"""The pipelines' parameters: one schema per pipeline, the one source of their rules and words.

Each parameter has a type, a default, a range or its choices, and a one-line description. The schema
is read without kfp and without the pipeline definitions, so `lethe pipeline submit|schedule|run`
refuse a bad parameter in one line before anything is imported, claimed or sent. The pipelines take
their docstrings from it (`documented`: KFP reads the `Args:` section into the compiled YAML's
parameter descriptions, the run form's help), after checking that the function's signature (names,
types, defaults) is the schema's.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lethe.errors import LetheError, PipelineError

#: KFP carries numbers as JSON doubles: a larger integer would arrive changed.
MAX_INTEGER = 2**53
#: Seeds go to torch, numpy and random alike; numpy takes 0..2**32-1 (the CLI's --seed rule).
MAX_SEED = 2**32 - 1
MAX_TEXT = 8192
MAX_ITEMS = 100_000
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f]")  # any control character, line breaks included
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # the same, but tabs and newlines (inline YAML)
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")
_TYPE_WORDS = {str: "text", int: "a whole number", float: "a number", bool: "true or false",
               list: "a JSON list of strings"}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _matching(pattern: str, words: str) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if value and not compiled.fullmatch(value):
            raise PipelineError(f"must be {words}, not {value[:80]!r}")
        return value

    return check


def _alpha(value: str) -> str:
    from lethe.forgetting.alpha import parse_alpha  # import-light: no torch

    parse_alpha(value)
    return value


def _inline_or_uri(loader: str) -> Callable[[str], str]:
    """A check for a policy parameter: a storage URI is read by the task that takes it; anything else
    is inline YAML, parsed here by the library's own loader (torch-free) so that it is refused now."""
    def check(value: str) -> str:
        import importlib

        from lethe.storage.uris import uri_scheme  # stdlib only

        text = value.strip()
        if text and not uri_scheme(text):
            module, name = loader.rsplit(".", 1)
            getattr(importlib.import_module(module), name)(text, source="inline YAML")
        return value

    return check


def _scenarios() -> tuple[str, ...]:
    from lethe.forgetting.scenarios import SCENARIOS  # the rows; no torch

    return tuple(SCENARIOS)


def _model_name(value: str) -> str:
    from lethe.registry.tags import MODEL_NAME_PATTERN  # stdlib only

    return _matching(MODEL_NAME_PATTERN, "a registered model name (letters, digits, '_', '.', '-')")(value)


@dataclass(frozen=True)
class Param:
    """One pipeline parameter. `storage`: its value may name an object-store URI (s3://...), which the
    tasks that take it read; `multiline`: line breaks allowed (inline YAML)."""

    name: str
    type: type
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    choices: Callable[[], tuple[str, ...]] | None = None
    check: Callable[[Any], Any] | None = None
    required: bool = False
    storage: bool = False
    multiline: bool = False

    def parse(self, text: str) -> Any:
        """The value of `-p NAME=TEXT`, typed and checked."""
        value: Any = text
        if self.type in (int, float, bool) and _LINE_BREAKING.search(text):
            raise self.refused(text, "must not hold control characters")  # float("\n1") would be 1.0
        if self.type is int:
            try:
                value = int(text.strip())
            except ValueError:
                raise self.refused(text, "must be a whole number") from None
        elif self.type is float:
            try:
                value = float(text.strip())
            except ValueError:
                raise self.refused(text, "must be a number") from None
        elif self.type is bool:
            word = text.strip().lower()
            if word not in _TRUE + _FALSE:
                raise self.refused(text, "must be true or false")
            value = word in _TRUE
        elif self.type is list:
            try:
                value = json.loads(text)
            except ValueError:
                value = None
            if not isinstance(value, list):
                raise self.refused(text, 'must be a JSON list, e.g. ["a", "b"]')
        return self.check_value(value)

    def check_value(self, value: Any) -> Any:
        """`value` (already typed, e.g. from Python) checked against the rules; returns it as the
        pipeline takes it (an int for a float parameter becomes a float)."""
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.type is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, self.type) or (self.type is not bool and isinstance(value, bool)):
            raise self.refused(value, f"must be {_TYPE_WORDS[self.type]}")
        if self.type is float and not math.isfinite(value):
            raise self.refused(value, "must be a finite number")
        if self.type in (int, float):
            self._check_range(value)
        if self.type is str:
            self._check_text(value)
        if self.type is list:
            if len(value) > MAX_ITEMS or not all(isinstance(item, str) and item.strip() for item in value):
                raise self.refused(value, "must be a list of non-empty strings")
            for item in value:
                self._check_text(item, multiline=False)
        if self.check is not None:
            try:
                self.check(value)
            except LetheError as exc:
                raise PipelineError(f"pipeline parameter {self.name}: {exc}") from None
        return value

    def _check_range(self, value: float) -> None:
        if self.positive and not value > 0:
            raise self.refused(value, "must be a positive number")
        low = -MAX_INTEGER if self.minimum is None else self.minimum
        high = MAX_INTEGER if self.maximum is None else self.maximum
        if not low <= value <= high:
            bound = (f"at least {_number(low)}" if self.maximum is None
                     else f"between {_number(low)} and {_number(high)}")
            raise self.refused(value, f"must be {bound}")

    def _check_text(self, value: str, *, multiline: bool | None = None) -> None:
        multiline = self.multiline if multiline is None else multiline
        if len(value) > MAX_TEXT:
            raise self.refused(value, f"is longer than {MAX_TEXT} characters")
        if (_CONTROL if multiline else _LINE_BREAKING).search(value):
            raise self.refused(value, "must not hold control characters")
        if self.required and not value.strip():
            raise self.refused(value, "must not be empty")
        if self.choices is not None and value not in self.choices():
            raise self.refused(value, f"must be one of {', '.join(self.choices())}")

    def refused(self, value: Any, why: str) -> PipelineError:
        shown = value if not isinstance(value, str) else value[:80]
        return PipelineError(f"pipeline parameter {self.name} {why}, not {shown!r}")

    @property
    def kind(self) -> str:
        return {str: "str", int: "int", float: "float", bool: "bool", list: "list"}[self.type]


@dataclass(frozen=True)
class PipelineParams:
    """The parameters of one pipeline, in the function's order."""

    pipeline: str
    params: tuple[Param, ...]

    def __getitem__(self, name: str) -> Param:
        for param in self.params:
            if param.name == name:
                return param
        raise PipelineError(f"pipeline {self.pipeline} has no parameter {name}; it takes "
                            f"{', '.join(self.names)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def parse(self, items: Sequence[str] | None) -> dict[str, Any]:
        """`-p KEY=VALUE` items, each typed and checked by its parameter; unknown keys refused."""
        values: dict[str, Any] = {}
        for item in items or ():
            key, sep, text = item.partition("=")
            if not sep or not key.strip():
                raise PipelineError(f"pipeline parameter {item[:80]!r} is not KEY=VALUE")
            values[key.strip()] = self._param(key.strip()).parse(text)
        return values

    def check(self, values: Mapping[str, Any] | None) -> dict[str, Any]:
        """Values given in Python, checked; unknown keys refused. A text value of a number, boolean or
        list parameter is read as `-p` reads it (a form or a JSON file gives text)."""
        checked: dict[str, Any] = {}
        for key, value in (values or {}).items():
            param = self._param(str(key))
            text_given = isinstance(value, str) and param.type is not str
            checked[key] = param.parse(value) if text_given else param.check_value(value)
        return checked

    def _param(self, key: str) -> Param:
        if key not in self.names:
            raise PipelineError(f"pipeline {self.pipeline} has no parameter(s) {key}; "
                                f"it takes {', '.join(self.names)}")
        return self[key]

    def docstring(self, summary: str = "") -> str:
        """A Google-style docstring whose `Args:` KFP copies into the compiled parameters."""
        args = "\n".join(f"    {p.name}: {p.description}" for p in self.params)
        return f"{summary.strip() or self.pipeline}\n\nArgs:\n{args}\n"

    def check_signature(self, func: Callable[..., Any]) -> None:
        """The pipeline function takes exactly these parameters, with these types and defaults."""
        found = [(name, p.annotation, p.default)
                 for name, p in inspect.signature(func, eval_str=True).parameters.items()]
        wanted = [(p.name, p.type, p.default) for p in self.params]
        if found != wanted:
            differ = [w[0] for w, f in zip(wanted, found, strict=False) if w != f]
            if len(found) != len(wanted):
                differ.append("their number")
            raise PipelineError(f"pipeline {self.pipeline}: the function {func.__name__} and its parameter "
                                f"schema (lethe.kfp.params) differ in {', '.join(differ)}")


# --- the parameters ------------------------------------------------------------------------------------

def _model(description: str = "The model: models:/NAME/VERSION, models:/NAME@ALIAS, an alias of "
                              "LETHE_MODEL_NAME, or a model directory.") -> Param:
    return Param("model", str, "champion", description, required=True)


DATASET = Param("dataset", str, "", "The data set: a name or a published URI (s3://...); empty: the one "
                                    "the champion's card names, or LETHE_DATASET_URI.", storage=True)
MODEL_NAME = Param("model_name", str, "", "The registered model; empty: LETHE_MODEL_NAME.", check=_model_name)
SUBJECT_MAP = Param("subject_map", str, "", "The subject map (subject_id, sample_id) as a storage URI; "
                                            "empty: LETHE_SUBJECT_MAP.", storage=True)
BATCH_SIZE = Param("batch_size", int, 1, "Batch size of the importance passes; 1: per sample.",
                   minimum=1, maximum=65536)
METHOD = Param("method", str, "lfssd", "Importance method: lfssd (label-free), ssd (needs labels) or "
                                       "another registered one.", required=True,
               check=_matching(r"[a-z][a-z0-9_-]{0,63}", "a method name such as lfssd or ssd"))
ALPHA = Param("alpha", str, "search", "Dampening strength α: a positive number, assd, or search (the largest "
                                      "α that meets the gate's targets).", check=_alpha)
CUTOFF = Param("cutoff", str, "", "Where dampening may act: empty (searched with α), all, or a stage name "
                                  "of the model.",
               check=_matching(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}", "all, search or a stage name"))
LAM = Param("lam", float, 1.0, "Dampening constant λ, a positive number.", positive=True)
THRESHOLDS = Param("thresholds", str, "", "The gate's limits, inline YAML or a storage URI (a pod cannot "
                                          "read a file of the submitting machine); empty: the defaults.",
                   storage=True, multiline=True,
                   check=_inline_or_uri("lethe.evaluation.thresholds.parse_yaml"))
LADDER = Param("ladder", str, "", "What to do when the gate refuses (repair rungs, retrain), inline YAML "
                                  "or a storage URI; empty: the default ladder policy.",
               storage=True, multiline=True, check=_inline_or_uri("lethe.evaluation.ladder.parse_yaml"))
REFRESH = Param("refresh", bool, True, "Compute a new champion's full-data importances now, not in the next "
                                       "run that needs them.")
FORGET_IDS = Param("forget_ids", list, [], "Sample ids to forget, a JSON list (run parameters are visible "
                                           "in KFP: file GDPR requests in the ledger).")
FORGET_SUBJECTS = Param("forget_subjects", list, [], "Subjects whose samples to forget through the subject "
                                                     "map, a JSON list (visible in KFP, like forget_ids).")
FORGET_CLASS = Param("forget_class", int, -1, "A class index to forget; -1: none.", minimum=-1,
                     maximum=100_000)
EPOCHS = Param("epochs", int, 0, "Training epochs; 0: the recipe's.", minimum=0, maximum=100_000)
RECIPE = Param("recipe", str, "", "The root version's train.json (a storage URI), for a model registered "
               "without one; empty: the version's own.", storage=True)

SCHEMAS: dict[str, PipelineParams] = {schema.pipeline: schema for schema in (
    PipelineParams("scheduled", (
        DATASET, MODEL_NAME,
        Param("max_requests", int, 0, "The most pending erasure requests this run takes; 0: all of them.",
              minimum=0, maximum=1_000_000),
        SUBJECT_MAP, BATCH_SIZE, METHOD, ALPHA, CUTOFF, LAM, THRESHOLDS, REFRESH, LADDER)),
    PipelineParams("unlearning", (
        _model(), DATASET, FORGET_IDS, FORGET_SUBJECTS, FORGET_CLASS,
        Param("scenario", str, "subject", "What is forgotten and how it is judged: subject (people's "
                                          "samples) or class.", choices=_scenarios),
        MODEL_NAME, SUBJECT_MAP, BATCH_SIZE, METHOD, ALPHA, CUTOFF, LAM, THRESHOLDS, REFRESH, LADDER)),
    PipelineParams("importances", (
        _model(), DATASET,
        Param("num_shards", int, 4, "Pods the training set is split over; their shards merge exactly.",
              minimum=1, maximum=1024),
        BATCH_SIZE, METHOD)),
    PipelineParams("reference-models", (
        _model("The version whose reference models to train: models:/NAME/VERSION, models:/NAME@ALIAS, "
               "an alias or a model directory."),
        Param("k", int, 8, "How many reference models; each sample is left out of about half of them.",
              minimum=2, maximum=256),
        Param("seed", int, 0, "Seed of the random halves.", minimum=0, maximum=MAX_SEED),
        EPOCHS, RECIPE)),
    PipelineParams("retrain", (
        _model("The version to replace: models:/NAME/VERSION, models:/NAME@ALIAS, an alias or a model "
               "directory."),
        Param("forget_ids", list, [], "More sample ids to leave out, beyond those its lineage forgot, a JSON "
                                      "list (visible in KFP)."),
        Param("forget_subjects", list, [], "More subjects to leave out, through the subject map, a JSON list "
                                           "(visible in KFP)."),
        Param("forget_class", int, -1, "A class to leave out; -1: none.", minimum=-1, maximum=100_000),
        SUBJECT_MAP, EPOCHS, RECIPE, MODEL_NAME, THRESHOLDS)),
)}


def pipeline_params(name: str) -> PipelineParams:
    """The schema of pipeline `name`; an unknown name is refused in one line."""
    try:
        return SCHEMAS[name]
    except KeyError:
        raise PipelineError(f"unknown pipeline {name!r}; expected one of {', '.join(SCHEMAS)}") from None


def validate_params(pipeline: str, values: Mapping[str, Any] | None) -> dict[str, Any]:
    """The one validator of pipeline parameters: `values` of pipeline `pipeline` (e.g. `scheduled`)
    checked against its schema; returns them as the pipeline takes them (typed). Any unknown name, wrong
    type, value out of range or bad text is a one-line PipelineError; nothing is imported but the schema."""
    return pipeline_params(pipeline).check(values)


def parse_param_items(pipeline: str, items: Sequence[str] | None) -> dict[str, Any]:
    """`-p KEY=VALUE` items of pipeline `pipeline`, typed and checked (the CLI's reading)."""
    return pipeline_params(pipeline).parse(items)


def documented(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Applied under `@dsl.pipeline`: checks the function against schema `name` and gives it the
    schema's docstring (its own first line kept as the summary)."""
    schema = pipeline_params(name)

    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        schema.check_signature(func)
        summary = (inspect.getdoc(func) or "").split("\n\n")[0]
        func.__doc__ = schema.docstring(summary)
        return func

    return apply
