"""The closed sets of words a run's records carry: the gate's verdict and the version's decision."""

from __future__ import annotations

from typing import Literal, get_args

#: The gate's verdict on a candidate (`lethe.evaluation.GateDecision.decision`).
GateVerdict = Literal["pass", "review"]
#: What became of a registered version: `pass` (new champion), `review` (the gate refused it),
#: `stale` (it passed, but the champion moved on during the run).
Decision = Literal["pass", "review", "stale"]

GATE_VERDICTS: tuple[str, ...] = get_args(GateVerdict)
DECISIONS: tuple[str, ...] = get_args(Decision)
