"""The speed targets (issue 8): the headline keys of speed.json, what each ratio is, its limit.

One list for the run that checks them and the README that prints them.
"""

from __future__ import annotations

SPEED_TARGETS = [
    {
        "key": "importance_overhead_ratio",
        "what": "importance pass / bare forward+backward",
        "target": "≤ 1.05",
        "check": lambda v: v <= 1.05,
    },
    {
        "key": "cached_speedup",
        "what": "request recomputing D / request with D cached",
        "target": "≥ 100×",
        "check": lambda v: v >= 100,
    },
    {
        "key": "retrain_speedup",
        "what": "retraining from scratch / unlearning (ASSD α)",
        "target": "≥ 1,000×",
        "check": lambda v: v >= 1000,
    },
    {
        "key": "eval_speedup",
        "what": "batched evaluation / batch-size-1 evaluation",
        "target": "≥ 20×",
        "check": lambda v: v >= 20,
    },
]
