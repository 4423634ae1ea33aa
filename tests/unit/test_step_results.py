"""Typed steps: every step returns a dataclass, and α means the same on every path that takes it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import lethe.steps
from components.unlearning import unlearn
from lethe.cli import main
from lethe.errors import ConfigError, LetheError
from lethe.forgetting.alpha import parse_alpha
from lethe.forgetting.spec import ForgetSpec
from lethe.registry.fetch import FetchedModel
from lethe.steps.results import ImportancesResult, UnlearnResult

STEPS = [getattr(lethe.steps, name) for name in lethe.steps.__all__]


def _extra_steps() -> list:
    from lethe.steps.evaluate import evaluate
    from lethe.steps.unlearn import unlearn

    return [unlearn, evaluate]


@pytest.mark.parametrize("step", STEPS + _extra_steps(), ids=lambda step: step.__name__)
def test_every_step_is_annotated_to_return_a_dataclass(step) -> None:
    returned = eval(step.__annotations__["return"], step.__globals__)
    assert isinstance(returned, type) and dataclasses.is_dataclass(returned), step.__name__
    assert callable(getattr(returned, "to_dict", None)), step.__name__


def test_to_dict_is_json_and_leaves_out_what_a_step_did_not_set() -> None:
    key = {"model_fingerprint": "m", "dataset_fingerprint": "d", "method": "lfssd", "batch_size": 1}
    computed = ImportancesResult(**key, cached=False, uri="u", sha256="s", dataset="digits", num_samples=3,
                                 num_batches=3, seconds=0.1)
    assert "num_shards" not in computed.to_dict() and "model_version" not in computed.to_dict()
    merged = dataclasses.replace(computed, num_shards=2)
    assert json.loads(json.dumps(merged.to_dict())) == {**key, "cached": False, "uri": "u", "sha256": "s",
                                                        "dataset": "digits", "num_samples": 3,
                                                        "num_batches": 3, "seconds": 0.1, "num_shards": 2}


def test_unlearn_summary_holds_scalars_only() -> None:
    result = UnlearnResult(out_dir=Path("c"), scenario="class", method="lfssd", alpha=3.0, cutoff="block3",
                           lam=1.0, alpha_method="given", target_met=True, forget_agreement=0.1,
                           retain_agreement=0.99, total_selected=5, fraction_dampened=0.01, forget_size=20,
                           target={"criterion": "forget_accuracy"}, importances={"computed": False},
                           dampening={"alpha": 3.0, "format": "lethe-dampening/1"})
    assert result.summary == {"alpha": 3.0, "cutoff": "block3", "lam": 1.0, "alpha_method": "given",
                              "target_met": True, "forget_agreement": 0.1, "retain_agreement": 0.99,
                              "total_selected": 5, "fraction_dampened": 0.01, "forget_size": 20}
    assert result.to_dict() == {"alpha": 3.0, "format": "lethe-dampening/1", "summary": result.summary}
    assert FetchedModel("directory", "", "", "f").to_dict()["fingerprint"] == "f"


# --- α: one rule for the CLI and the pipeline component ----------------------------------------

ALPHAS = {"": "search", "search": "search", " ASSD ": "assd", "12.5": 12.5,
          "inf": ConfigError, "1e400": ConfigError, "nan": ConfigError, "0": ConfigError,
          "-1": ConfigError, "bogus": ConfigError}


class Reached(LetheError):
    """Raised by the stand-in `unlearn`: the α got through and is recorded."""


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list:
    import lethe.steps.unlearn

    seen: list = []

    def stand_in(*args, alpha, **kwargs):
        seen.append(alpha)
        raise Reached("stop before any work")

    monkeypatch.setattr(lethe.steps.unlearn, "unlearn", stand_in)
    return seen


def _through_cli(text: str, recorded: list, tmp_path: Path) -> object:
    code = main(["unlearn", "--model", str(tmp_path / "model"), "--dataset", "digits", "--forget-class", "1",
                 f"--alpha={text}", "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 2  # refused, or stopped by the stand-in
    return recorded.pop() if recorded else ConfigError


def _through_component(text: str, recorded: list, tmp_path: Path) -> object:
    from kfp.dsl import Artifact, Model


    ForgetSpec(scenario="class", dataset="digits", forget_class=1).save(tmp_path / "forget")
    artifact = lambda kind, name: kind(name=name, uri=str(tmp_path / name), metadata={})  # noqa: E731
    try:
        unlearn.python_func(model=artifact(Model, "model"), forget=artifact(Artifact, "forget"),
                            importances=artifact(Artifact, "importances"), dataset="", batch_size=1,
                            alpha=text, cutoff="", lam=1.0, method="", thresholds="",
                            candidate=artifact(Model, "candidate"))
    except Reached:
        return recorded.pop()
    except ConfigError:
        return ConfigError
    raise AssertionError("the stand-in unlearn was not reached and nothing was refused")


@pytest.mark.parametrize("text", list(ALPHAS))
def test_alpha_means_the_same_through_the_cli_and_the_component(text, recorded, tmp_path) -> None:
    expected = ALPHAS[text]
    # The one difference: a pipeline parameter cannot be absent, so the component reads "" as "not
    # given" (search); `--alpha=` on a command line is a typo, refused.
    assert _through_cli(text, recorded, tmp_path) == (ConfigError if text == "" else expected)
    assert _through_component(text, recorded, tmp_path) == expected


def test_parse_alpha_takes_numbers_and_none() -> None:
    assert parse_alpha(None) == "search" and parse_alpha(2) == 2.0
    for bad in (0.0, -3, float("inf"), float("nan"), True):
        with pytest.raises(ConfigError):
            parse_alpha(bad)


def test_results_alpha_and_the_device_helper_do_not_load_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, lethe.devices, lethe.steps.results, lethe.forgetting.alpha, lethe.steps.collect, "
            "lethe.steps.finalize; print('torch' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "False"
