"""The pipelines' parameter schema (lethe.kfp.params): typed, ranged, described, readable without kfp."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lethe.errors import PipelineError
from lethe.kfp.params import SCHEMAS, parse_param_items, pipeline_params, validate_params

ROWS = [(schema.pipeline, param) for schema in SCHEMAS.values() for param in schema.params]


@pytest.mark.parametrize(("pipeline", "param"), ROWS, ids=[f"{p}.{q.name}" for p, q in ROWS])
def test_every_parameter_has_a_one_line_description_and_a_default_its_own_rules_accept(pipeline, param):
    assert param.description.strip() and "\n" not in param.description
    assert len(param.description) < 200
    assert validate_params(pipeline, {param.name: param.default}) == {param.name: param.default}


def test_items_are_typed_as_the_pipeline_takes_them():
    assert parse_param_items("scheduled", ["max_requests=3", "lam=2", "refresh=false", "alpha=0.5",
                                           "thresholds=class:\n  forget_accuracy_max: 0.2"]) == {
        "max_requests": 3, "lam": 2.0, "refresh": False, "alpha": "0.5",
        "thresholds": "class:\n  forget_accuracy_max: 0.2"}
    assert parse_param_items("unlearning", ['forget_ids=["d/train/1", "d/train/2"]', "scenario=class"]) == {
        "forget_ids": ["d/train/1", "d/train/2"], "scenario": "class"}


def test_a_dict_may_give_text_for_numbers_and_lists_as_a_form_would():
    assert validate_params("unlearning", {"forget_class": "3", "lam": 1, "forget_ids": '["a"]'}) == {
        "forget_class": 3, "lam": 1.0, "forget_ids": ["a"]}


@pytest.mark.parametrize(("pipeline", "values", "words"), [
    ("scheduled", {"max_requests": "abc"}, "max_requests must be a whole number"),
    ("scheduled", {"max_requests": -1}, "max_requests must be between 0 and"),
    ("scheduled", {"max_requests": True}, "max_requests must be a whole number"),
    ("scheduled", {"lam": 0}, "lam must be a positive number"),
    ("scheduled", {"lam": float("nan")}, "lam must be a finite number"),
    ("scheduled", {"alpha": "loud"}, "alpha"),
    ("scheduled", {"cutoff": "a b"}, "cutoff"),
    ("scheduled", {"model_name": "../x"}, "model_name"),
    ("scheduled", {"method": "SSD;rm"}, "method"),
    ("scheduled", {"refresh": "maybe"}, "refresh must be true or false"),
    ("scheduled", {"dataset": "s3://a/b\nc"}, "dataset must not hold control characters"),
    ("scheduled", {"thresholds": "x" * 9000}, "thresholds is longer than"),
    # Inline policies are parsed by the library before anything is claimed: a typo in a key, a scalar.
    ("scheduled", {"thresholds": "class: {forget_acc_max: 0.1}"}, "unknown gate threshold"),
    ("scheduled", {"thresholds": "NaN"}, "must be a mapping"),
    ("scheduled", {"ladder": "rungs: [dampen, sing]"}, "unknown rung 'sing'"),
    ("scheduled", {"bogus": 1}, "has no parameter(s) bogus"),
    ("unlearning", {"forget_ids": "d/train/1"}, "forget_ids must be a JSON list"),
    ("unlearning", {"forget_ids": [1]}, "forget_ids must be a list of non-empty strings"),
    ("unlearning", {"forget_subjects": [" "]}, "forget_subjects must be a list of non-empty strings"),
    ("unlearning", {"forget_class": 2.5}, "forget_class must be a whole number"),
    ("unlearning", {"forget_class": -2}, "forget_class must be between -1 and"),
    ("unlearning", {"scenario": "everything"}, "scenario must be one of"),
    ("unlearning", {"model": " "}, "model must not be empty"),
    ("importances", {"num_shards": 0}, "num_shards must be between 1 and"),
    ("reference-models", {"seed": 2**40}, "seed must be between 0 and"),
    ("reference-models", {"k": 1}, "k must be between 2 and"),
    ("nightly", {}, "unknown pipeline 'nightly'"),
])
def test_a_bad_value_is_one_line_that_names_the_parameter(pipeline, values, words):
    with pytest.raises(PipelineError) as refused:
        validate_params(pipeline, values)
    message = str(refused.value)
    assert words in message and "\n" not in message and len(message) < 400


@pytest.mark.parametrize("item", ["max_requests", "=3", "max_requests=1e3"])
def test_an_item_that_is_not_key_value_or_not_a_whole_number_is_refused(item):
    with pytest.raises(PipelineError, match="max_requests|KEY=VALUE"):
        parse_param_items("scheduled", [item])


def test_the_docstring_lists_every_parameter_under_args():
    schema = pipeline_params("unlearning")
    doc = schema.docstring("Forget.")
    assert doc.startswith("Forget.") and "\nArgs:\n" in doc
    for param in schema.params:
        assert f"    {param.name}: {param.description}" in doc


def test_a_function_that_differs_from_its_schema_is_refused():
    def wrong(model: str = "champion", k: int = 3) -> None:
        """K."""

    with pytest.raises(PipelineError, match="differ in k"):
        pipeline_params("reference-models").check_signature(wrong)


def test_the_schema_is_read_without_kfp_the_pipelines_or_torch():
    code = ("import sys; import lethe.kfp.params as p;"
            "p.validate_params('unlearning', {'scenario': 'class'});"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('kfp', 'pipelines', 'components', 'torch', 'mlflow')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
