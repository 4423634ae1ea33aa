"""The ladder in the pipelines: compiled (every pipeline that unlearns branches on the gate's verdict after
each rung) and run through kfp.local on digits (dampening refused for an accuracy drop, repaired, passed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipelines.helpers import lethe_home, register_champion

LADDER_COMPONENTS = {"comp-climb", "comp-repair", "comp-retrain-rung"}


@pytest.mark.parametrize("name", ["scheduled", "unlearning"])
def test_every_pipeline_that_unlearns_compiles_the_ladder(name: str, tmp_path: Path):
    import yaml
    from kfp import compiler

    from pipelines import PIPELINES

    out = tmp_path / f"{name}.yaml"
    compiler.Compiler().compile(PIPELINES[name], str(out))
    spec = next(yaml.safe_load_all(out.read_text()))  # the pipeline spec (then the platform spec)
    assert set(spec["components"]) >= LADDER_COMPONENTS
    assert "ladder" in spec["root"]["inputDefinitions"]["parameters"]  # the policy is a run parameter
    text = " ".join(out.read_text().split())  # conditions are wrapped over lines
    for verdict in ("register", "repair", "retrain"):  # dsl.If on the ladder's decision, each branch
        assert f"== '{verdict}'" in text


@pytest.mark.slow
def test_the_unlearning_pipeline_repairs_what_dampening_over_did(tmp_path: Path, digits_convnet_dir: Path):
    from lethe.kfp.local import run_local
    from lethe.registry import Registry

    with lethe_home(tmp_path / "lethe") as home:
        register_champion(digits_convnet_dir)
        params = {"forget_class": 3, "scenario": "class", "alpha": "1.5", "cutoff": "all", "refresh": False}
        run = run_local("unlearning", params,
                        pipeline_root=home / "kfp", log_path=home / "kfp.log")
        assert run.succeeded, (run.failed_task, run.failure, (home / "kfp.log").read_text()[-3000:])
        ran = set(run.tasks)
        assert {"climb", "repair", "climb-2"} <= ran and not any(t.startswith("retrain") for t in ran)
        registry = Registry()
        assert registry.champion_version() == "2"
        champion = registry.version("2")
        assert champion.tags["lethe.rungs"] == "dampen,repair"
        assert "repair (retain_finetune" in champion.description
