"""What may reach MLflow: request ids, never a subject id (raw or hashed) nor a sample id.

The guard runs before anything is sent: it scans every string (params, metric names, tags,
description) and every text file to be uploaded for the caller's forbidden values (the subjects,
their hashes, the forget set's sample ids) and for anything shaped like a lethe sample id
(`<dataset>/<split>/<index>`, e.g. `digits/train/17`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from lethe.errors import ConfigError, RegistryError

SAMPLE_ID = re.compile(r"(?<![\w/.-])[A-Za-z0-9_.:-]+/(?:train|test|val|validation)/\d+(?![\w/])")
#: An e-mail address anywhere in free text ("subject=alice@x.org", "alice@x.org's", "<a@b.co>").
EMAIL = re.compile(r"[A-Za-z0-9._%+'-]*[A-Za-z0-9_%+-]@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
TEXT_SUFFIXES = {".json", ".html", ".htm", ".txt", ".csv", ".yaml", ".yml", ".md", ".log", ".svg"}


class PrivacyGuard:
    """`forbidden`: values that must not leave; `names_subject`: a test for free text (e.g.
    `Ledger.mentions_subject`, which hashes the text's words and looks them up) where the raw
    subject ids are not at hand."""

    def __init__(self, forbidden: Iterable[str] = (), *,
                 names_subject: Callable[[str], bool] | None = None) -> None:
        # Very short values would match by accident (a subject "7"); they are checked as whole tokens.
        self._forbidden = sorted({str(v) for v in forbidden if str(v).strip()}, key=len, reverse=True)
        self._short = {v for v in self._forbidden if len(v) < 6}
        self._names_subject = names_subject

    def _find(self, text: str, *, emails: bool = True) -> str | None:
        for value in self._forbidden:
            if value in self._short:
                if re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", text):
                    return value
            elif value in text:
                return value
        # E-mail addresses in free text and short values; not in uploaded files, where bundled
        # scripts (an Evidently report's) carry their authors' addresses.
        match = SAMPLE_ID.search(text) or (EMAIL.search(text) if emails else None)
        return match.group(0) if match else None

    def check_text(self, text: str, where: str, *, emails: bool = True) -> None:
        found = self._find(text, emails=emails)
        if found is None and self._names_subject is not None and self._names_subject(text):
            found = "…"
        if found is not None:
            raise RegistryError(f"refusing to send {where} to MLflow: it holds a subject id, a sample id or "
                                f"an e-mail address ({_mask(found)}); only request ids may leave the ledger")

    def check_files(self, paths: Iterable[Path]) -> None:
        for path in paths:
            if path.is_dir():
                self.check_files(sorted(p for p in path.rglob("*") if p.is_file()))
            elif path.suffix.lower() in TEXT_SUFFIXES:
                self.check_text(path.read_text(errors="replace"), f"the file {path.name}", emails=False)


def check_free_text(text: str, where: str, names_subject: Callable[[str], bool] | None = None) -> None:
    """Free text that is stored or sent (a reviewer's reason, a cancel or retry note): no sample id, no
    e-mail address, and (with `names_subject`, e.g. `Ledger.mentions_subject`) no id the ledger knows."""
    guard = PrivacyGuard(names_subject=names_subject)
    found = guard._find(text)
    if found is None and names_subject is not None and names_subject(text):
        found = "…"
    if found is not None:
        raise ConfigError(f"{where} names a subject id, a sample id or an e-mail address ({_mask(found)}): "
                          "describe why without it")


def _mask(value: str) -> str:
    return value[:2] + "…" if len(value) > 3 else "…"


def check_registration(guard: PrivacyGuard, *, params: Mapping[str, str], tags: Mapping[str, str],
                       metric_names: Iterable[str], description: str, run_name: str,
                       files: Iterable[Path]) -> None:
    """Everything a registration sends to MLflow, checked before the first request: params and tags
    (key and value), metric names, the description, the run name and every text file to upload."""
    for key, value in {**params, **tags}.items():
        guard.check_text(f"{key}={value}", f"'{key}'")
    for key in metric_names:
        guard.check_text(key, f"the metric '{key}'")
    guard.check_text(description, "the description")
    guard.check_text(run_name, "the run name")
    guard.check_files(files)
