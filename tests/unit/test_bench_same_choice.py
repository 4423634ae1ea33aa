"""The quality benchmark publishes what users get: its default strategy and `lethe unlearn` choose alike."""

from __future__ import annotations

import pytest

from benchmarks.quality import Scenario
from benchmarks.speed import pick_subjects
from benchmarks.strategies import STRATEGIES, choose
from benchmarks.workbench import BenchData
from lethe.models import load_model
from lethe.steps.importance_pass import importances_of
from lethe.steps.unlearn import FULL_IMPORTANCES_FILE, make_target, unlearn
from lethe.unlearning import Importances


# Digit 2: the selection cuts below `hidden` (every layer would be another α); 40 samples of subjects:
# the product caps a subject's α at ASSD's (today's uncapped search ends at α=1000: no change at all).
@pytest.mark.parametrize("scenario", [Scenario("class-2", "class", forget_class=2),
                                      Scenario("subject-40", "subject", size=40)], ids=lambda s: s.name)
def test_the_benchmark_and_the_product_choose_the_same_configuration(
    scenario, digits_convnet_dir, digits_train, digits_test, tmp_path, one_thread
) -> None:
    model, _ = load_model(digits_convnet_dir)
    split = scenario.split(digits_train, seed=0)
    subjects = pick_subjects(digits_train, scenario.size, seed=0) if scenario.kind == "subject" else ()
    out = tmp_path / "out"
    product = unlearn(digits_convnet_dir, "digits", forget_class=scenario.forget_class,
                      forget_subjects=subjects, out_dir=out, device="cpu", progress=False)
    # The full-data importances the product computed (per sample, its default): the benchmark's too.
    full = Importances.load(out / FULL_IMPORTANCES_FILE)

    request = scenario.request(BenchData(digits_train, digits_test, digits_train), split)
    forget = importances_of(model, split.forget, progress=False)
    target = make_target(model, request, device="cpu", seed=0)
    ours = choose("lfssd_select", model, full, forget, request, target, paper_alpha=10.0)

    assert STRATEGIES["lfssd_select"].cutoff is None  # the product's default, not a benchmark's own
    assert product.alpha_method == ours.alpha_method == "search"
    assert (ours.cutoff, ours.alpha) == (product.cutoff, product.alpha)
    assert ours.parameters == (tuple(product.dampening["dampened_parameters"])
                               if product.dampening["dampened_parameters"] is not None else None)
    assert ours.selection["found"] and product.target_met
