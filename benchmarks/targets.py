"""The speed targets (issue 18): the headline keys of speed.json, what each ratio is, its limit.

One list for the run that checks them and the README that prints them. "Request": a subject request of
100 samples with the full-data importances cached; each ratio names its α strategy.
"""

from __future__ import annotations

SPEED_TARGETS = [
    {"key": "importance_overhead_ratio", "what": "batch-mean importance pass / bare forward+backward",
     "target": "≤ 1.05", "check": lambda v: v <= 1.05},
    {"key": "per_sample_ratio", "what": "per-sample importance pass / bare batched forward+backward",
     "target": "≤ 1.3 (CPU convnet), ≤ 1.5 (GPU ResNet18)", "check": lambda v: v <= 1.5},
    {"key": "cached_speedup", "what": "request recomputing D / request with D cached (ASSD α)",
     "target": "≥ 100×", "check": lambda v: v >= 100},
    {"key": "request_to_limit",
     "what": "request with the default selection / its floor (Df pass, one dampening, one target check)",
     "target": "≤ 3", "check": lambda v: v <= 3},
    {"key": "retrain_speedup", "what": "retraining with the model's own recipe / request (default selection)",
     "target": "≥ 100×", "check": lambda v: v >= 100},
    {"key": "eval_efficiency", "what": "bare batched forward / the evaluate step's whole evaluation "
     "(membership tests included)", "target": "≥ 0.8", "check": lambda v: v >= 0.8},
    {"key": "pipeline_overhead", "what": "scheduled run through kfp.local / the same steps called directly",
     "target": "≤ 1.25", "check": lambda v: v <= 1.25},
]


def per_sample_limit(device: str) -> float:
    """The per-sample ratio's limit: 1.3 on the CPU (convnet), 1.5 on a GPU (ResNet18)."""
    return 1.3 if device.startswith("cpu") else 1.5


def check_targets(headline: dict[str, float | None], device: str) -> list[dict]:
    """Each target with the measured value and whether it is met (None: not measured, not met)."""
    rows = []
    for t in SPEED_TARGETS:
        value = headline.get(t["key"])
        check = (lambda v: v <= per_sample_limit(device)) if t["key"] == "per_sample_ratio" else t["check"]
        rows.append({"key": t["key"], "what": t["what"], "target": t["target"], "value": value,
                     "met": value is not None and bool(check(value))})
    return rows
