"""Dead letters: the stream's refused messages, written with the batch that refused them
(:func:`add_dead_letters`, called inside the stream's batch transaction) and read back for
operators (:class:`DeadLetterStore`)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ml.registry import entities as e
from ml.registry.db import Database, where_given
from ml.registry.models import DeadLetter, utcnow

__all__ = ["DeadLetterStore", "add_dead_letters"]


def _text(value: str) -> str:
    """``value`` without NUL characters (PostgreSQL's text refuses them; poison may hold them)."""
    return value.replace("\x00", "\ufffd")


def add_dead_letters(session: Session, rows: Iterable[e.DeadLetterRow]) -> int:
    """Insert the dead letters whose ``event_id`` is not stored yet (a redelivered batch adds
    nothing); return how many were new. Runs in the caller's transaction. NUL characters in
    the text become U+FFFD, so no payload can make the batch's commit fail."""
    fresh = {r.event_id: r for r in rows}
    if not fresh:
        return 0
    known = set(
        session.scalars(select(DeadLetter.event_id).where(DeadLetter.event_id.in_(list(fresh))))
    )
    now = utcnow()
    session.add_all(
        DeadLetter(
            event_id=r.event_id,
            consumer=_text(r.consumer),
            topic=_text(r.topic),
            partition=r.partition,
            offset=r.offset,
            key=_text(r.key) if r.key is not None else None,
            error_type=_text(r.error_type),
            reason=_text(r.reason),
            payload=_text(r.payload),
            payload_bytes=r.payload_bytes,
            occurred_at=r.occurred_at,
            created_at=r.created_at or now,
        )
        for event_id, r in fresh.items()
        if event_id not in known
    )
    return len(fresh) - len(known)


class DeadLetterStore:
    """What operators read of the dead letters: counts and the latest ones."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def counts(self, topic: str | None = None, error_type: str | None = None) -> e.DeadLetterCounts:
        """Stored dead letters in all, by error type and by topic (optionally filtered)."""
        by: dict[str, dict[str, int]] = {}
        with self._db.session() as session:
            for name, column in (
                ("error_type", DeadLetter.error_type),
                ("topic", DeadLetter.topic),
            ):
                query = where_given(
                    select(column, func.count(DeadLetter.id)),
                    DeadLetter,
                    topic=topic,
                    error_type=error_type,
                ).group_by(column)
                by[name] = {str(k): int(n) for k, n in session.execute(query)}
        return e.DeadLetterCounts(sum(by["error_type"].values()), by["error_type"], by["topic"])

    def recent(
        self, limit: int = 20, topic: str | None = None, error_type: str | None = None
    ) -> list[e.DeadLetterRow]:
        """The last ``limit`` dead letters, newest first."""
        query = where_given(select(DeadLetter), DeadLetter, topic=topic, error_type=error_type)
        query = query.order_by(DeadLetter.id.desc()).limit(limit)
        with self._db.session() as session:
            return [r.to_entity() for r in session.scalars(query)]
