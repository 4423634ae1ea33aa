"""benchmarks/README.md from README.md.j2 and the result JSON files: tables regenerated, the prose kept.

The Jinja2 template holds every sentence and the layout; this module loads the JSON files and gives the
template its number formats (filters) and `table` (tabulate's GitHub markdown). The hand-written
discussion lives between the PROSE markers and survives regeneration; every number outside it comes
from the JSON files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jinja2
from tabulate import tabulate

from benchmarks.workbench import mean

PROSE_BEGIN, PROSE_END = "<!-- prose: kept when the tables are regenerated -->", "<!-- /prose -->"
DEFAULT_PROSE = "_(Written after a full run: where LFSSD misses, and by how much.)_"
TEMPLATE = Path(__file__).with_name("README.md.j2")


def _load(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / name
    return json.loads(path.read_text()) if path.is_file() else None


def _stat(stat: Mapping[str, Any] | None, scale: float, digits: int) -> str:
    """A {mean, std, n} stat as "mean ± std", scaled (the std only over more than one seed)."""
    if mean(stat) is None:
        return "–"
    assert stat is not None
    text = f"{scale * stat['mean']:.{digits}f}"
    return text + (f" ± {scale * stat['std']:.{digits}f}" if stat.get("n", 0) > 1 else "")


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def ratio(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 2:
        return f"{value:.3f}×"
    return f"{value:.1f}×" if value < 100 else f"{value:,.0f}×"


def at(summary: Mapping[str, Any], path: str) -> float | None:
    """The mean of the stat at a dotted path of a method's summary ("metrics.forget_accuracy")."""
    node: Any = summary
    for key in path.split("."):
        node = (node or {}).get(key)
    return mean(node)


def average(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE.parent), trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined,
                             extensions=["jinja2.ext.do"])
    env.filters.update(
        pct=lambda s, digits=1: _stat(s, 100, digits), num=lambda s, digits=2: _stat(s, 1, digits),
        points=lambda value, digits=1: "–" if value is None else f"{100 * value:.{digits}f}",
        duration=lambda value: seconds(value) if value < 3600 else f"{value / 3600:.1f} h",
        # {"all": 2, "block3": 1} as "all ×2, block3"
        counts=lambda c: ", ".join(f"{v} ×{n}" if n > 1 else v for v, n in (c or {}).items()) or "–",
        seconds=seconds, ratio=ratio, at=at, mean=mean, fmt=format)
    env.globals.update(average=average, pluck=lambda mapping, keys: [mapping[k] for k in keys],
                       table=lambda header, rows: tabulate(rows, header, "github", disable_numparse=True))
    env.tests["contains"] = lambda values, value: value in values
    return env


def _current(speed: dict[str, Any] | None) -> dict[str, Any] | None:
    """A speed result of today's format (the seven ratios); an older one is not rendered."""
    return speed if speed and "eval_efficiency" in speed.get("headline", {}) else None


def render(results: Path, image_prefix: str, prose: str, command: str) -> str:
    """The README: the template rendered over the JSON files in `results`."""
    speed, quality, sweep = (_load(results, n) for n in ("speed.json", "quality.json", "sweep.json"))
    # The run that produced the tables (a --readme-only regeneration only re-renders them; a speed
    # result re-measured alone with `--only speed` names its own command beside the whole run's).
    commands = [r["command"] for r in (quality, speed, sweep) if r and r.get("command")]
    text = _environment().get_template(TEMPLATE.name).render(
        folder=image_prefix or ".", command="`; `".join(dict.fromkeys(commands)) or command,
        prose_begin=PROSE_BEGIN, prose=prose.strip() or DEFAULT_PROSE, prose_end=PROSE_END,
        speed=_current(speed), quality=quality, sweep=sweep, prefix=image_prefix,
        device=_current(_load(results, "speed-cuda.json")), full_cuda=_load(results / "cuda", "speed.json"))
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"


def write_readme(results: Path, readme: Path, image_prefix: str, command: str) -> Path:
    """Renders the README over `results` into `readme`, keeping the discussion between its prose markers."""
    text = readme.read_text() if readme.is_file() else ""
    kept = PROSE_BEGIN in text and PROSE_END in text
    prose = text.split(PROSE_BEGIN, 1)[1].split(PROSE_END, 1)[0] if kept else ""
    readme.write_text(render(results, image_prefix, prose, command))
    return readme
