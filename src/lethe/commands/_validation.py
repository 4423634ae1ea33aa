"""Argument types and checks shared by the commands: bad input is refused before any side effect.

The `type=` callables run while argparse parses, so a bad number or device fails in one line
before a ledger, a model or a data set is opened. `check_out_dir` runs first thing in a command.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

from lethe.errors import ConfigError, LetheError

#: Seeds go to torch, numpy and random alike; numpy takes 0..2**32-1.
MAX_SEED = 2**32 - 1


def integer(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [minimum, maximum]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise argparse.ArgumentTypeError(f"must be {bound}, not {value}")
        return value

    parse.__name__ = "integer"
    return parse


def positive_number(text: str) -> float:
    """An argparse type: a finite number > 0 (refuses nan, inf, 0 and negatives)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive, finite number, not {text!r}")
    return value


def sample_id(text: str) -> str:
    """An argparse type: one sample id, not empty nor blank (an empty list would mean every sample)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty sample id: name the samples, or leave out --samples "
                                         "for every sample of the subject")
    if any(ord(c) < 32 or c == "\x7f" for c in text):
        raise argparse.ArgumentTypeError(f"a sample id with control characters: {text!r}")
    return text.strip()


def plain_text(text: str) -> str:
    """An argparse type: text without control characters (a subject id, a name)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise argparse.ArgumentTypeError("holds control characters")
    return text


def _from_lethe_error(check: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse type from a library check that raises LetheError (argparse wants ArgumentTypeError)."""

    def parse(text: str) -> object:
        try:
            return check(text)
        except LetheError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = check.__name__
    return parse


def _device(text: str) -> str:
    from lethe.devices import resolve_device

    return resolve_device(text)


def _alpha(text: str) -> str | float:
    from lethe.forgetting.alpha import parse_alpha

    if not text.strip():  # an empty α would silently mean the default search
        raise ConfigError("alpha is empty: give a positive number, 'search' or 'assd'")
    return parse_alpha(text)


device_argument = _from_lethe_error(_device)
alpha_argument = _from_lethe_error(_alpha)


#: Kernel and device filesystems: nothing lethe writes belongs there (and mkdir fails late, even as root).
PSEUDO_FILESYSTEMS = (Path("/proc"), Path("/sys"), Path("/dev"))


def check_out_dir(path: str | Path, *, flag: str = "--out",
                  sources: tuple[str | Path | None, ...] = ()) -> None:
    """Refuse an output directory that is empty (it would mean the current directory), a file, lies
    under a file, under /proc, /sys or /dev, or is one of `sources` (an input) or inside one.

    A storage URI (`s3://`, or any scheme lethe.storage serves) is left to its backend, once
    `backend_for` knows its scheme; local paths and `file://` URIs are checked here.
    """
    from lethe.storage import backend_for, uri_scheme  # the storage layer loads boto3: only when run
    from lethe.storage.uris import local_path

    def local(uri: str | Path) -> Path | None:
        if uri_scheme(uri) in ("", "file"):
            return local_path(uri)
        backend_for(str(uri))  # an unknown scheme is refused here, in one line
        return None

    if not str(path).strip():
        raise ConfigError(f"{flag} is empty: name a directory (an empty path would be the current one)")
    if any(ord(c) < 32 or ord(c) == 127 for c in str(path)):
        raise ConfigError(f"{flag} {str(path)!r} holds control characters")
    target = local(path)
    if target is None:
        return
    absolute = Path(os.path.abspath(target))
    if any(absolute == root or root in absolute.parents for root in PSEUDO_FILESYSTEMS):
        raise ConfigError(f"{flag} {target} lies in a kernel filesystem ({absolute.parts[1]}): "
                          "write elsewhere")
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{flag} {target} is an existing file, not a directory")
    for parent in absolute.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{flag} {target}: {parent} is a file, not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"{flag} {target}: {parent} is not writable")
            break
    resolved = target.resolve()
    for source in sources:
        source_text = str(source or "")
        is_local = bool(source_text) and uri_scheme(source_text) in ("", "file")
        source_path = local_path(source_text) if is_local else None
        if source_path is None or not source_path.exists():
            continue
        source_resolved = source_path.resolve()
        if resolved == source_resolved:
            raise ConfigError(f"{flag} {target} is the input model directory: write the result elsewhere")
        if source_path.is_dir() and source_resolved in resolved.parents:
            raise ConfigError(f"{flag} {target} lies inside the input model directory {source_path}: "
                              "write the result elsewhere")
