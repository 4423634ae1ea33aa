"""The scenarios: one row per way of forgetting, read by every step, the gate and the CLI.

In the style of torch's `optim_db`: a frozen row per scenario says what the forget set is made of,
how the α search measures forgetting, which gate checks judge it and with which section of the gate's
thresholds, where dampening acts by default, the search's bounds and the repair rungs it may climb.
Code reads the rows (`scenario(name)`); nothing else spells a scenario's name. Import-light: the
resolution imports the data package only when it runs, so the CLI can list the rows for free.

Adding a scenario is a row here (plus, if its limits differ, its section in
`lethe/evaluation/thresholds.yaml`); docs/architecture.md, "Extension costs", counts the files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lethe.errors import ConfigError, LetheError

if TYPE_CHECKING:
    from lethe.data import ForgetSplit, SampleSet

#: The forget-set arguments every step takes; a scenario accepts some of them (`Scenario.takes`).
FORGET_INPUTS = ("forget_ids", "forget_subjects", "forget_class")


def _union(train: SampleSet, *, ids: Sequence[str], subjects: Sequence[str],
           subjects_map: Mapping[str, Sequence[str]] | None, forget_class: int | None) -> ForgetSplit:
    """Every sample named, every sample of the subjects named, every sample of the class."""
    from lethe.data import resolve_forget_set

    return resolve_forget_set(train, ids=ids, subjects=subjects, subjects_map=subjects_map,
                              forget_class=forget_class)


@dataclass(frozen=True)
class Scenario:
    """One way of forgetting: what is forgotten, how it is measured and judged."""

    name: str
    #: One line for the CLI's help: what is forgotten, and what the gate expects of the candidate.
    summary: str
    #: The forget-set arguments it accepts (of FORGET_INPUTS); an on-demand run refuses the others.
    takes: tuple[str, ...]
    #: The forget set is a whole class: the spec records the class (not its ids), and the evaluation
    #: sets the class's test samples apart (a model that forgot a class is meant to fail on them).
    forgets_class: bool
    #: The α search's forgetting target: a key of `lethe.evaluation.targets.TARGETS`.
    target: str
    #: The gate's checks after the accuracy drops: keys of `lethe.evaluation.gate.CHECKS`.
    checks: tuple[str, ...]
    #: Its section of the gate's thresholds: check C's limit is `<section>.<C>_max`.
    thresholds: str
    #: With the version's reference models, the per-example membership test replaces `checks`.
    per_example: bool
    #: Where dampening may act when α is searched and no cut-off is given: True searches the stage
    #: boundaries (and every layer); False dampens every layer (as a given α always does).
    searches_cutoff: bool
    #: The α search never goes above ASSD's α (never less dampening than the ASSD rule), so the
    #: candidate always changes (DESIGN: never serve a model that forgot nothing).
    alpha_at_most_assd: bool
    #: Splits the training set into forget and retain sets from the forget-set arguments.
    resolve: Callable[..., ForgetSplit] = field(default=_union, repr=False)
    #: The repair methods a run may climb to after dampening (names of `lethe.unlearning.repair`'s registry),
    #: in the order the ladder's `auto` tries them for the gate's refusal (`lethe.evaluation.ladder`).
    repair_rungs: tuple[str, ...] = ()

    def refuse_inputs(self, given: Sequence[str], error: type[LetheError] = ConfigError) -> None:
        """Refuse forget-set arguments this scenario does not take, or none (before anything is fetched)."""
        extra = [name for name in given if name not in self.takes]
        if extra or not given:
            takes = " or ".join(name.removeprefix("forget_") for name in self.takes)
            offending = f", not {' or '.join(n.removeprefix('forget_') for n in extra)}" if extra else ""
            raise error(f"the {self.name} scenario forgets {takes}{offending}")


SCENARIOS: dict[str, Scenario] = {row.name: row for row in (
    Scenario(
        name="class",
        summary="a whole class (the candidate predicts it on at most the gate's share of its samples)",
        takes=("forget_class",), forgets_class=True, target="forgotten_class_share",
        checks=("forget_accuracy",), thresholds="class", per_example=False,
        searches_cutoff=True, alpha_at_most_assd=False,
        # Dampening silenced the class but cost the rest: retain data repairs it (the class never shown).
        repair_rungs=("retain_finetune",)),
    Scenario(
        name="subject",
        summary="specific samples or people (their samples should look like unseen data)",
        takes=("forget_ids", "forget_subjects"), forgets_class=False, target="member_rate_gap",
        checks=("forget_accuracy_over_test", "member_rate_gap"), thresholds="subject", per_example=True,
        # A subject's samples often already look unseen, so every cut-off meets the target at once and
        # the least change (the output layer alone) would win: subjects keep every layer at ASSD's α.
        searches_cutoff=False, alpha_at_most_assd=True,
        # Names of lethe.unlearning.repair's registry, tried in order for the gate's refusal (`auto`): a
        # person still flagged gets NegGrad+ (the closest to retraining in the memorised benchmark), an
        # accuracy drop the retain fine-tune; the others can be named.
        repair_rungs=("neggrad_plus", "retain_finetune", "damage_repair", "scrub")),
)}
#: The scenario of a run that names samples or subjects (a scheduled run's requests).
DEFAULT_SCENARIO = "subject"


def scenario(name: str, *, error: type[LetheError] = ConfigError) -> Scenario:
    """The row named `name`; an unknown name is a one-line `error` naming the known ones."""
    try:
        return SCENARIOS[name]
    except (KeyError, TypeError):
        raise error(f"unknown scenario {name!r}; expected one of {', '.join(SCENARIOS)}") from None


def given_inputs(**inputs: object) -> list[str]:
    """The names of the forget-set arguments that were given (not empty)."""
    return [name for name in FORGET_INPUTS if inputs.get(name) not in (None, (), [], "")]


def infer_scenario(name: str | None, **inputs: object) -> Scenario:
    """The row named `name`, else the first row that takes every forget-set argument given
    (`forget_class` alone: class), else the default (samples and subjects)."""
    if name is not None:
        return scenario(name)
    given = given_inputs(**inputs)
    for row in SCENARIOS.values():
        if given and set(given) <= set(row.takes):
            return row
    return SCENARIOS[DEFAULT_SCENARIO]


def describe_scenarios() -> str:
    """`name: summary` for each row, for help texts."""
    return "; ".join(f"{row.name}: {row.summary}" for row in SCENARIOS.values())
