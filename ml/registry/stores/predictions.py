"""The prediction log: predictions the API served, written in batches and read back newest
first; retention keeps at most a number of rows and of days."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import delete, func, insert, select

from ml.registry import entities as e
from ml.registry.db import Database, where_given
from ml.registry.models import PredictionLogRecord, utcnow

__all__ = ["PredictionLogStore"]


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()


class PredictionLogStore:
    """Append a batch of predictions, read the last N, apply retention."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_many(self, rows: Sequence[e.PredictionRow]) -> int:
        """Store ``rows`` in one transaction (in their order); return how many."""
        if not rows:
            return 0
        values = [
            {
                "domain": r.domain,
                "endpoint": r.endpoint,
                "model_version": r.model_version,
                "inputs": _json(r.inputs),
                "output": _json(r.output),
                "latency_ms": r.latency_ms,
                "served_at": r.served_at,
            }
            for r in rows
        ]
        with self._db.session.begin() as session:  # one Core executemany, no ORM objects
            session.execute(insert(PredictionLogRecord.__table__), values)
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
