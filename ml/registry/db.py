"""Engines and schema migrations (Alembic, run programmatically) for SQLite and PostgreSQL."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, Select, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

__all__ = [
    "Database",
    "where_given",
    "normalize_url",
    "make_engine",
    "alembic_config",
    "upgrade",
    "migration_lock",
    "current_revision",
]

_HERE = Path(__file__).resolve().parent


Q = TypeVar("Q", bound=Select[Any])


def where_given(query: Q, entity: Any, **values: Any) -> Q:
    """``query`` restricted to ``entity.<name> == value`` for each value that is not None."""
    for name, value in values.items():
        if value is not None:
            query = query.where(getattr(entity, name) == value)
    return query


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; creates the folder of a SQLite file if needed."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # a server that stopped answering fails a connection attempt in seconds, not minutes
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": 5},
    )


def alembic_config(url: str) -> Config:
    config = Config(str(_HERE / "alembic.ini"))
    config.set_main_option("script_location", str(_HERE / "migrations"))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


#: PostgreSQL advisory lock key held while migrating ("millrace" in ASCII, as a bigint)
MIGRATION_LOCK_KEY = 0x6D696C6C72616365


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Held while migrating, so processes starting together against a new database migrate it
    one after the other (the later ones find it at head): an advisory lock on PostgreSQL, a file
    lock beside a SQLite file."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or database in (None, "", ":memory:"):
        yield
        return
    with open(f"{database}.migration-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (idempotent; safe when several processes
    start at once)."""
    engine = make_engine(url)  # creates the SQLite folder
    try:
        with migration_lock(engine):
            command.upgrade(alembic_config(url), revision)
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


class Database:
    """One engine and its session factory, shared by the aggregate stores (``stores/``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session = sessionmaker(engine, expire_on_commit=False)
        #: row locks (``SELECT ... FOR UPDATE``) where the backend has them
        self.locking = engine.dialect.name == "postgresql"
        #: positional parameter marker of the driver (plain SQL on the stream's hot path)
        self.mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def shareable_url(self) -> str | None:
        """The URL when another process can open the same database (not in-memory SQLite)."""
        url = self.engine.url
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            return None
        return url.render_as_string(hide_password=False)

    def close(self) -> None:
        self.engine.dispose()
