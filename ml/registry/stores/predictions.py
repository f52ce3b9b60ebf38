"""The prediction log: predictions the API served, written in batches and read back newest
first; retention keeps at most a number of rows and of days."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import delete, func, select

from ml.registry import entities as e
from ml.registry.db import Database, where_given
from ml.registry.models import PredictionLogRecord, utcnow

__all__ = ["PredictionLogStore"]


def _stored_time(at: datetime, sqlite: bool) -> datetime | str:
    """``at`` as :class:`~ml.registry.models.UtcDateTime` stores it: naive UTC text on SQLite
    (SQLAlchemy's format), aware UTC elsewhere."""
    at = at.astimezone(UTC)
    if sqlite:
        return at.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    return at


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()


class PredictionLogStore:
    """Append a batch of predictions, read the last N, apply retention."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_many(self, rows: Sequence[e.PredictionRow]) -> int:
        """Store ``rows`` in one transaction (in their order); return how many.

        One DB-API ``executemany`` of plain tuples (JSON by orjson, the time in the column's
        stored form): this runs beside a serving event loop, and SQLAlchemy's per-row
        parameter processing held the GIL for most of a flush."""
        if not rows:
            return 0
        table = PredictionLogRecord.__table__
        with self._db.session.begin() as session:
            connection = session.connection()
            mark, sqlite = self._db.mark, connection.dialect.name == "sqlite"
            columns = ("domain", "endpoint", "model_version", "inputs", "output", "latency_ms",
                       "served_at")  # fmt: skip
            sql = (
                f"INSERT INTO {table.name} ({', '.join(columns)}) "
                f"VALUES ({', '.join([mark] * len(columns))})"
            )
            connection.exec_driver_sql(
                sql,
                [
                    (
                        r.domain,
                        r.endpoint,
                        r.model_version,
                        _json(r.inputs),
                        _json(r.output),
                        float(r.latency_ms),
                        _stored_time(r.served_at, sqlite),
                    )  # fmt: skip
                    for r in rows
                ],
            )
        return len(rows)

    def recent(
        self, last: int = 100, domain: str | None = None, model_version: str | None = None
    ) -> list[e.PredictionRow]:
        """The last ``last`` predictions (insertion order), newest first."""
        query = where_given(
            select(PredictionLogRecord),
            PredictionLogRecord,
            domain=domain,
            model_version=model_version,
        )
        query = query.order_by(PredictionLogRecord.id.desc()).limit(max(0, last))
        with self._db.session() as session:
            return [r.to_entity() for r in session.scalars(query)]

    def latencies(
        self, last: int = 1000, domain: str | None = None
    ) -> list[tuple[float, float, str]]:
        """``(served at (epoch seconds), latency ms, model version)`` of the last ``last``
        predictions, oldest first (reads no inputs or outputs)."""
        query = where_given(
            select(
                PredictionLogRecord.served_at,
                PredictionLogRecord.latency_ms,
                PredictionLogRecord.model_version,
            ),
            PredictionLogRecord,
            domain=domain,
        )
        query = query.order_by(PredictionLogRecord.id.desc()).limit(max(0, last))
        with self._db.session() as session:
            rows = session.execute(query).all()
        return [(at.timestamp(), ms, version) for at, ms, version in reversed(rows)]

    def count(self, domain: str | None = None) -> int:
        query = where_given(
            select(func.count(PredictionLogRecord.id)), PredictionLogRecord, domain=domain
        )
        with self._db.session() as session:
            return int(session.execute(query).scalar_one())

    def prune(
        self,
        max_rows: int | None = None,
        max_age: timedelta | None = None,
        now: datetime | None = None,
    ) -> int:
        """Delete the rows beyond the newest ``max_rows`` and those served more than
        ``max_age`` ago (either bound optional); return how many were deleted."""
        deleted = 0
        with self._db.session.begin() as session:
            if max_age is not None:
                cutoff = (now or utcnow()) - max_age
                result = session.execute(
                    delete(PredictionLogRecord).where(PredictionLogRecord.served_at < cutoff)
                )
                deleted += result.rowcount or 0
            if max_rows is not None:
                # the id of the oldest row kept: everything below it goes
                keep_from = session.execute(
                    select(PredictionLogRecord.id)
                    .order_by(PredictionLogRecord.id.desc())
                    .offset(max_rows)
                    .limit(1)
                ).scalar_one_or_none()
                if keep_from is not None:
                    result = session.execute(
                        delete(PredictionLogRecord).where(PredictionLogRecord.id <= keep_from)
                    )
                    deleted += result.rowcount or 0
        return deleted
