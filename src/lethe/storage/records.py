"""Records on disk: typed JSON documents tagged with their format and version.

Every file lethe writes for another step or a later run (forget sets, plans, cards, certificates,
manifests) is one `Record` subclass: a pydantic model with a `FORMAT` such as `lethe-forget-spec/1`.
One pair reads and writes each: `write(path)` / `read(path)` for a local file, `put(uri)` / `get(uri)`
through `lethe.storage` (a sha256 sidecar checked on every read), `to_bytes()` / `from_bytes()` for
callers that move the bytes themselves. A file that is missing, not JSON, of another format, of a
newer version, or with a field of the wrong type is refused in one line of the record's `ERROR`.

Older versions stay readable: `UPGRADES[n]` turns the fields of version n into those of version n + 1,
and `read` applies them in order before validating (the record then reads as the current version).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from lethe.errors import LetheError
from lethe.storage.artifacts import get_bytes, put_bytes

#: The key that carries the format tag in every record.
FORMAT_KEY = "format"


def split_format(tag: str) -> tuple[str, int]:
    """`lethe-forget-spec/1` -> ("lethe-forget-spec", 1)."""
    name, sep, version = tag.rpartition("/")
    if not sep or not name or not version.isdigit():
        raise ValueError(f"a record format is NAME/VERSION, not {tag!r}")
    return name, int(version)


def _first_problem(exc: ValidationError) -> str:
    """One line for a pydantic error: the first failing field and why (and how many more)."""
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "the record"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"field {where}: {first.get('msg', 'invalid')}{more}"


class Record(BaseModel):
    """Base of every record on disk. Subclasses set `FORMAT` (`lethe-<name>/<version>`), `WHAT` (what
    the file should be, in words: "a lethe forget set") and `ERROR` (the LetheError to raise)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    FORMAT: ClassVar[str]
    WHAT: ClassVar[str] = "a lethe record"
    ERROR: ClassVar[type[LetheError]] = LetheError
    #: version n -> function turning version n's fields into version n + 1's.
    UPGRADES: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {}
    #: The JSON layout of the file (a record whose files predate `Record` keeps theirs, byte for byte).
    JSON_INDENT: ClassVar[int] = 1
    SORT_KEYS: ClassVar[bool] = False

    # --- bytes ---------------------------------------------------------------------------------------

    def to_fields(self) -> dict[str, Any]:
        """The JSON-able fields, format tag first."""
        return {FORMAT_KEY: self.FORMAT, **self.model_dump(mode="json")}

    def to_bytes(self) -> bytes:
        text = json.dumps(self.to_fields(), indent=self.JSON_INDENT, sort_keys=self.SORT_KEYS)
        return (text + "\n").encode()

    @classmethod
    def from_fields(cls, raw: Any, *, where: str = "the record") -> Self:
        """Validate parsed JSON (format tag included), upgrading an older version first."""
        if not isinstance(raw, dict):
            raise cls.ERROR(f"{where} is not {cls.WHAT} ({cls.FORMAT}): not a JSON object")
        raw = dict(raw)
        tag = raw.pop(FORMAT_KEY, None)
        name, version = split_format(cls.FORMAT)
        try:
            found_name, found_version = split_format(str(tag))
        except ValueError:
            found_name, found_version = "", 0
        if found_name != name:
            found = f"format {tag!r}" if tag is not None else "no format tag"
            raise cls.ERROR(f"{where} is not {cls.WHAT} ({cls.FORMAT}): it has {found}")
        if found_version > version:
            raise cls.ERROR(f"{where} is {cls.WHAT} of version {found_version}; this lethe reads up to "
                            f"version {version}: upgrade lethe")
        for step in range(found_version, version):
            upgrade = cls.UPGRADES.get(step)
            if upgrade is None:
                raise cls.ERROR(f"{where} is {cls.WHAT} of version {found_version}, which this lethe can no "
                                f"longer read (it reads version {version})")
            raw = upgrade(raw)
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problem = _first_problem(exc)
            raise cls.ERROR(f"{where} is not {cls.WHAT} ({cls.FORMAT}): {problem}") from None

    @classmethod
    def from_bytes(cls, data: bytes | str, *, where: str = "the record") -> Self:
        try:
            raw = json.loads(data)
        except ValueError as exc:
            raise cls.ERROR(f"cannot read {cls.WHAT} from {where}: not JSON ({exc})") from None
        return cls.from_fields(raw, where=where)

    # --- local files ---------------------------------------------------------------------------------

    def write(self, path: str | Path) -> Path:
        """Write the record to a local file (its folder is created); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.to_bytes())
        return path

    @classmethod
    def read(cls, path: str | Path) -> Self:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise cls.ERROR(f"cannot read {cls.WHAT} from {path}: {exc.strerror or exc}") from None
        return cls.from_bytes(data, where=str(path))

    # --- storage URIs (verified) ---------------------------------------------------------------------

    def put(self, uri: str) -> str:
        """Store the record at `uri` with its sha256 sidecar; returns the sha256."""
        return put_bytes(self.to_bytes(), uri)

    @classmethod
    def get(cls, uri: str) -> Self:
        """The record stored at `uri`, checked against its sidecar."""
        return cls.from_bytes(get_bytes(uri), where=uri)


# --- the untyped pair, kept for callers that have not moved to a Record yet --------------------------


def write_record(path: Path, fmt: str, fields: dict[str, Any]) -> Path:
    """`fields` under the format tag, as indented JSON (the folder is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({FORMAT_KEY: fmt, **fields}, indent=1) + "\n")
    return path


def read_record(path: Path, fmt: str, *, what: str, error: type[LetheError]) -> dict[str, Any]:
    """The fields of the record at `path` (the tag removed); `error` names `what` it should have been."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise error(f"cannot read {what} from {path}: {exc}") from exc
    if not isinstance(raw, dict) or raw.pop(FORMAT_KEY, None) != fmt:
        raise error(f"{path} is not {what} ({fmt})")
    return raw
