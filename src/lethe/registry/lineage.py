"""A version's lineage: the requests it honours (its parent's and its own, cumulative) and the
rule that keeps a champion from un-forgetting.

`champion` never moves to a version that honours fewer requests than the current champion: a
version computed from an older champion must be re-run, not promoted (it would un-forget).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from lethe.registry.metadata import PromotionDecision

#: The evidence file that holds a version's lineage.
LINEAGE_FILE = "lineage.json"


@dataclass(frozen=True)
class Lineage:
    """Where a new version comes from and what it honours."""

    parent_version: str | None
    request_ids: tuple[str, ...]  # cumulative: the parent's, then the new ones
    new_request_ids: tuple[str, ...]  # honoured first by this version

    @classmethod
    def of(cls, parent_version: str | None, parent_request_ids: Sequence[str],
           request_ids: Sequence[str]) -> Lineage:
        """The lineage of a version that newly honours `request_ids` on top of its parent's."""
        inherited = set(parent_request_ids)
        own = list(dict.fromkeys(map(str, request_ids)))
        return cls(parent_version=parent_version,
                   request_ids=tuple(dict.fromkeys([*parent_request_ids, *own])),
                   new_request_ids=tuple(i for i in own if i not in inherited))

    def document(self, *, model_name: str, scenario: str, gate: PromotionDecision, **unlearning: Any) -> str:
        """lineage.json: the lineage with the scenario, the gate and how the version was unlearned
        (`importances_uri`, `importances_sha256`, `alpha`, `lambda`, `method`)."""
        return json.dumps({"model_name": model_name, "parent_version": self.parent_version,
                           "request_ids": list(self.request_ids),
                           "new_request_ids": list(self.new_request_ids), "scenario": scenario,
                           **unlearning, "gate": {"passed": gate.passed, "reasons": list(gate.reasons)}},
                          indent=2) + "\n"


def may_promote(request_ids: Collection[str], champion_request_ids: Collection[str]) -> bool:
    """Whether a version that honours `request_ids` may become champion (on a passed gate or a
    reviewer's approval): it forgets at least everything the champion forgot."""
    return set(champion_request_ids) <= set(request_ids)
