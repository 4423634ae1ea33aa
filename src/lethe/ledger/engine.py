"""One SQLAlchemy engine per ledger URL and process: SQLite (default) or PostgreSQL (psycopg 3)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError, SQLAlchemyError

from lethe.errors import ConfigError, LedgerError
from lethe.ledger.schema import Base
from lethe.redact import check_url, mask_credentials, mask_url

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def normalize_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean the psycopg 3 driver (psycopg2 is not installed)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return mask_url(url)


def _sqlite_begin_immediate(engine: Engine) -> None:
    # sqlite3 would BEGIN lazily (DEFERRED) at the first write, so two claimers could read the same
    # pending rows; BEGIN IMMEDIATE takes the write lock first: transactions are serialized.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _create(url: str) -> Engine:
    check_url(url, "the ledger URL")
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"invalid ledger URL {mask_url(url)!r}: {mask_credentials(str(exc))}") from exc
    try:
        if parsed.get_backend_name() == "sqlite":
            if not parsed.database or parsed.database == ":memory:" or "mode=memory" in str(parsed.query):
                # Requests filed there are gone when the process exits: a ledger must outlive it.
                raise ConfigError(f"the ledger URL {safe_url(url)} is a database in memory: its requests "
                                  "would be lost when this process exits; use sqlite:///PATH or PostgreSQL")
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create the ledger's directory for {safe_url(url)}: "
                                  f"{exc.strerror or exc}") from exc
            engine = create_engine(url, connect_args={"timeout": 60})
            _sqlite_begin_immediate(engine)
        elif parsed.get_backend_name() == "postgresql":
            engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=30,
                                   connect_args={"connect_timeout": 5})
        else:
            raise ConfigError(f"unsupported ledger database {parsed.get_backend_name()!r}: "
                              "use sqlite:///PATH or postgresql+psycopg://...")
    except NoSuchModuleError as exc:
        raise ConfigError(f"no driver for the ledger URL {safe_url(url)}: {exc}") from exc
    with translate_errors(url):
        try:
            Base.metadata.create_all(engine)
        except SQLAlchemyError:
            Base.metadata.create_all(engine)  # another process created the tables at the same time
        _add_missing_columns(engine)
    return engine


def _add_missing_columns(engine: Engine) -> None:
    """Add the nullable columns a ledger made by an older lethe lacks (create_all adds tables only)."""
    from sqlalchemy import inspect, text

    inspector = inspect(engine)
    for table in Base.metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present or not column.nullable:
                continue
            kind = column.type.compile(dialect=engine.dialect)
            try:
                with engine.begin() as connection:
                    connection.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))
            except SQLAlchemyError:
                if column.name not in {c["name"] for c in inspect(engine).get_columns(table.name)}:
                    raise  # not a concurrent migration that got there first


def get_engine(url: str) -> Engine:
    url = normalize_url(url)
    with _lock:
        if url not in _engines:
            _engines[url] = _create(url)
        return _engines[url]


def dispose_engines() -> None:
    """Close every pooled connection (tests, and forked workers that must not share sockets)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def translate_errors(url: str) -> Iterator[None]:
    try:
        yield
    except (OperationalError, DBAPIError) as exc:
        first_line = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise LedgerError(f"ledger database {safe_url(url)} failed: {first_line}") from exc
