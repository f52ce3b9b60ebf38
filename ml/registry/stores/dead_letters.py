"""Dead letters: the stream's refused messages, written with the batch that refused them
(:func:`add_dead_letters`, called inside the stream's batch transaction), and the values the
stream dropped from events it kept (:func:`add_field_rejections`, same transaction), read back
for operators (:class:`DeadLetterStore`)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ml.registry import entities as e
from ml.registry.db import Database, where_given
from ml.registry.models import DeadLetter, FieldRejection, utcnow

__all__ = ["DeadLetterStore", "add_dead_letters", "add_field_rejections"]


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


def add_field_rejections(session: Session, rows: Iterable[e.FieldRejectionCount]) -> None:
    """Add a batch's dropped-value counts to the stored ones (one row per topic, partition,
    field and reason; the batch's example replaces the stored one). Runs in the caller's
    transaction, so each count is added exactly once with its batch (the partition's position
    moves in the same commit; only the partition's owner writes its rows)."""
    fresh = {(r.topic, r.partition, r.field, r.reason): r for r in rows}
    if not fresh:
        return
    query = select(FieldRejection).where(
        FieldRejection.topic.in_({k[0] for k in fresh}),
        FieldRejection.partition.in_({k[1] for k in fresh}),
    )
    stored = {
        (row.topic, row.partition, row.field, row.reason): row for row in session.scalars(query)
    }
    for key, r in fresh.items():
        row = stored.get(key)
        if row is None:
            row = FieldRejection(
                topic=_text(r.topic),
                partition=r.partition,
                domain=r.domain,
                field=r.field,
                reason=r.reason,
                count=0,
                first_seen_at=r.first_seen_at,
            )
            session.add(row)
        row.count = (row.count or 0) + r.count
        row.example_value = _text(r.example_value)[:64]
        row.example_detail = _text(r.example_detail)
        row.example_event_id = _text(r.example_event_id)[:128]
        row.example_key = _text(r.example_key)[:255] if r.example_key is not None else None
        row.example_offset = r.example_offset
        row.last_seen_at = r.last_seen_at


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

    def field_rejections(self, topic: str | None = None) -> list[e.FieldRejectionTotal]:
        """Dropped values by topic, field and reason over every partition (optionally of one
        topic), most frequent first, each with its latest example."""
        query = select(FieldRejection)
        if topic is not None:
            query = query.where(FieldRejection.topic == topic)
        totals: dict[tuple[str, str, str], e.FieldRejectionTotal] = {}
        with self._db.session() as session:
            for row in session.scalars(query):
                key = (row.topic, row.field, row.reason)
                known = totals.get(key)
                latest = row if known is None or row.last_seen_at >= known.last_seen_at else None
                example = latest or known
                totals[key] = e.FieldRejectionTotal(
                    topic=row.topic,
                    domain=row.domain,
                    field=row.field,
                    reason=row.reason,
                    count=(known.count if known else 0) + int(row.count),
                    example_value=example.example_value,  # type: ignore[union-attr]
                    example_detail=example.example_detail,  # type: ignore[union-attr]
                    example_event_id=example.example_event_id,  # type: ignore[union-attr]
                    example_key=example.example_key,  # type: ignore[union-attr]
                    first_seen_at=min(row.first_seen_at, known.first_seen_at)
                    if known
                    else row.first_seen_at,
                    last_seen_at=max(row.last_seen_at, known.last_seen_at)
                    if known
                    else row.last_seen_at,
                )
        return sorted(totals.values(), key=lambda t: (-t.count, t.topic, t.field, t.reason))
